package repository

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// BundleSuffix ends the name of every bundle object: a script NAME is the object <prefix>NAME.tar.gz.
const BundleSuffix = ".tar.gz"

// Limits bound a script bundle. They are checked when a bundle is packed and again, as untrusted input,
// when one is extracted.
type Limits struct {
	// MaxBytes bounds the total size of the files, uncompressed.
	MaxBytes int64
	// MaxFiles bounds the number of archive entries (files and folders).
	MaxFiles int
}

// DefaultLimits are the worker's and scrapectl's defaults (SCRIPT_MAX_SIZE_MB, SCRIPT_MAX_FILES).
var DefaultLimits = Limits{MaxBytes: 64 << 20, MaxFiles: 1000}

const (
	maxPathBytes  = 1024 // one entry's whole relative path
	maxNameBytes  = 255  // one path component
	maxPathDepth  = 32   // components in one path
	headerAllowed = 4096 // bytes of tar structure (headers, padding) allowed per entry on top of MaxBytes
)

// ErrInvalidBundle reports an archive that is not a valid script bundle.
var ErrInvalidBundle = errors.New("invalid script bundle")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidBundle, fmt.Sprintf(format, args...))
}

// FileSum is one file of an extracted bundle.
type FileSum struct {
	// Path is slash-separated and relative to the script folder.
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Exec   bool   `json:"exec,omitempty"`
}

// Inventory lists the files of a bundle, sorted by path. The cache keeps it next to each extracted copy and
// checks the copy against it before trusting it again.
type Inventory []FileSum

// Key is a content hash of the inventory: equal contents give equal keys, whatever the archive's
// metadata (order, timestamps, owners). It names the copy's folder in the cache.
func (inv Inventory) Key() string {
	h := sha256.New()
	for _, f := range inv {
		fmt.Fprintf(h, "%s %d %t %s\n", f.SHA256, f.Size, f.Exec, f.Path)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Size is the total size of the files.
func (inv Inventory) Size() int64 {
	var n int64
	for _, f := range inv {
		n += f.Size
	}
	return n
}

// entryPath checks an archive entry's name and returns it cleaned (no "./" prefix, no trailing slash).
// skip is set for the archive's root and for hidden files and what lies below them, which are never
// extracted (a script folder holds none: see ValidatePath). Bytecode (__pycache__, .pyc, .pyo) is an error.
func entryPath(name string) (clean string, skip bool, err error) {
	if !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\\") {
		return "", false, invalid("entry name %q has a NUL byte, a backslash or invalid UTF-8", name)
	}
	if strings.HasPrefix(name, "/") {
		return "", false, invalid("entry %q has an absolute path", name)
	}
	for strings.HasPrefix(name, "./") {
		name = name[2:]
	}
	name = strings.TrimSuffix(name, "/")
	if name == "" || name == "." {
		return "", true, nil
	}
	if len(name) > maxPathBytes {
		return "", false, invalid("entry name is %d bytes long; the limit is %d", len(name), maxPathBytes)
	}
	parts := strings.Split(name, "/")
	if len(parts) > maxPathDepth {
		return "", false, invalid("entry %q is nested more than %d folders deep", name, maxPathDepth)
	}
	for _, p := range parts {
		switch {
		case p == "" || p == "." || p == "..":
			return "", false, invalid("entry %q has an empty, '.' or '..' path component", name)
		case len(p) > maxNameBytes:
			return "", false, invalid("entry %q has a component longer than %d bytes", name, maxNameBytes)
		}
	}
	for i, p := range parts {
		switch {
		case strings.HasPrefix(p, "."):
			return name, true, nil // hidden, with all it holds
		case p == "__pycache__" || (i == len(parts)-1 && isBytecode(p)):
			return "", false, invalid("entry %q is Python bytecode; a bundle carries sources only (bytecode would run instead of the checked source)", name)
		}
	}
	return name, false, nil
}

// isBytecode reports whether a file name is compiled Python (.pyc, .pyo), which the runner never imports
// from a script's folder and bundles may not carry.
func isBytecode(name string) bool {
	return strings.HasSuffix(name, ".pyc") || strings.HasSuffix(name, ".pyo")
}

// Ignored reports whether a file or folder name is left out of script folders: hidden names (".git",
// ".env", ".DS_Store") and Python bytecode (__pycache__, .pyc, .pyo), which Pack never puts in a bundle
// and Extract refuses.
func Ignored(name string) bool {
	return strings.HasPrefix(name, ".") || name == "__pycache__" || isBytecode(name)
}

// countingReader counts and bounds what is read through it.
type countingReader struct {
	r     io.Reader
	n     int64
	limit int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n >= c.limit {
		return 0, invalid("archive is larger than %d bytes uncompressed", c.limit)
	}
	if int64(len(p)) > c.limit-c.n {
		p = p[:c.limit-c.n]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// ExtractTarGz extracts a gzip-compressed bundle into dst; see ExtractTar.
func ExtractTarGz(r io.Reader, dst string, lim Limits) (Inventory, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, invalid("not a gzip stream: %v", err)
	}
	inv, err := ExtractTar(zr, dst, lim)
	if err != nil {
		return nil, err
	}
	// ExtractTar read the decompressed stream to its end, so gzip has checked its CRC-32 and length.
	if err := zr.Close(); err != nil {
		return nil, invalid("gzip: %v", err)
	}
	return inv, nil
}

// ExtractTar extracts an uncompressed tar bundle into dst, an existing empty folder, and returns what it
// wrote. The archive is untrusted: entries must be regular files or folders (no symlinks, hard links or
// devices), their names relative paths without "..", empty or absolute components; duplicates are
// refused; the files' total size and the number of entries are bounded by lim, and so is everything read
// from r, so a crafted archive cannot make extraction read or write without end. The bundle must hold
// EntryPoint at its root. ExtractTar reads r to its end. On error dst may hold a partial extraction: the
// caller removes it.
func ExtractTar(r io.Reader, dst string, lim Limits) (Inventory, error) {
	if lim.MaxBytes <= 0 || lim.MaxFiles <= 0 {
		return nil, errors.New("extract: limits must be positive")
	}
	cr := &countingReader{r: r, limit: lim.MaxBytes + int64(lim.MaxFiles+2)*headerAllowed}
	tr := tar.NewReader(cr)
	var (
		inv     Inventory
		total   int64
		entries int
		seen    = map[string]bool{}
	)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, tarError(err)
		}
		entries++
		if entries > lim.MaxFiles {
			return nil, invalid("archive has more than %d entries", lim.MaxFiles)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader { // git archive writes the commit id in one
			continue
		}
		name, skip, err := entryPath(hdr.Name)
		if err != nil {
			return nil, err
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeDir:
		default:
			return nil, invalid("entry %q is a %s; only regular files and folders are allowed", hdr.Name, typeName(hdr.Typeflag))
		}
		if hdr.Typeflag == tar.TypeReg {
			if hdr.Size < 0 || hdr.Size > lim.MaxBytes-total {
				return nil, invalid("files are larger than %d bytes in total", lim.MaxBytes)
			}
			total += hdr.Size // skipped files count too: reading past them costs the same
		}
		if skip {
			continue
		}
		if seen[name] {
			return nil, invalid("entry %q appears twice", name)
		}
		seen[name] = true
		target := filepath.Join(dst, filepath.FromSlash(name))
		if hdr.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(target, 0o755); err != nil {
				return nil, invalid("folder %q: %v", name, err)
			}
			continue
		}
		sum, err := writeFile(target, tr, hdr)
		if err != nil {
			return nil, fmt.Errorf("extract %q: %w", name, err)
		}
		sum.Path = name
		inv = append(inv, sum)
	}
	// Read to the end: trailing bytes are bounded by cr, and a compressed stream checks its trailer.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return nil, tarError(err)
	}
	sort.Slice(inv, func(i, j int) bool { return inv[i].Path < inv[j].Path })
	if !hasEntryPoint(inv) {
		return nil, invalid("no %s at the top of the archive", EntryPoint)
	}
	return inv, nil
}

func hasEntryPoint(inv Inventory) bool {
	for _, f := range inv {
		if f.Path == EntryPoint {
			return true
		}
	}
	return false
}

// tarError keeps ErrInvalidBundle for format errors and passes the read errors of the underlying stream
// (a dropped connection, a failed git process) through as they are.
func tarError(err error) error {
	if errors.Is(err, ErrInvalidBundle) {
		return err
	}
	if errors.Is(err, tar.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, gzip.ErrChecksum) ||
		errors.Is(err, gzip.ErrHeader) || errors.Is(err, tar.ErrFieldTooLong) {
		return invalid("%v", err)
	}
	return err
}

func writeFile(target string, r io.Reader, hdr *tar.Header) (FileSum, error) {
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return FileSum{}, invalid("%v", err)
	}
	mode := os.FileMode(0o644)
	exec := hdr.Mode&0o111 != 0
	if exec {
		mode = 0o755
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return FileSum{}, invalid("%v", err)
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return FileSum{}, tarError(err)
	}
	return FileSum{Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), Exec: exec}, nil
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symbolic link"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeChar, tar.TypeBlock:
		return "device"
	case tar.TypeFifo:
		return "named pipe"
	case tar.TypeGNUSparse:
		return "sparse file"
	}
	return fmt.Sprintf("tar entry of type %q", t)
}

// VerifyDir checks that dir holds exactly the files of inv, with their sizes and contents; a file in a
// __pycache__ folder is unexpected like any other. The cache runs it before trusting a copy again, so a damaged or tampered copy
// is downloaded anew instead of run.
func VerifyDir(dir string, inv Inventory) error {
	want := make(map[string]FileSum, len(inv))
	for _, f := range inv {
		want[f.Path] = f
	}
	found := 0
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		if d.IsDir() {
			return nil // bytecode caches included: a file in one is unexpected (the runner writes none)
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		f, ok := want[rel]
		if !ok {
			return fmt.Errorf("unexpected file %q", rel)
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%q is not a regular file", rel)
		}
		sum, err := hashFile(p)
		if err != nil {
			return err
		}
		if sum.Size != f.Size || sum.SHA256 != f.SHA256 {
			return fmt.Errorf("%q changed (%d bytes, sha256 %.12s; expected %d bytes, sha256 %.12s)", rel, sum.Size, sum.SHA256, f.Size, f.SHA256)
		}
		found++
		return nil
	})
	if err != nil {
		return err
	}
	if found != len(inv) {
		return fmt.Errorf("%d of %d files are missing", len(inv)-found, len(inv))
	}
	return nil
}

func hashFile(p string) (FileSum, error) {
	f, err := os.Open(p)
	if err != nil {
		return FileSum{}, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return FileSum{}, err
	}
	return FileSum{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// PackedFile is one file of a script folder being packed.
type PackedFile struct {
	Path string // slash-separated, relative to the folder
	Size int64
	Exec bool
}

// Collect lists the files Pack would put in a bundle of dir, sorted, and the names it leaves out (hidden
// files and folders, __pycache__). Symbolic links and other non-regular files are errors: a bundle holds
// none. The limits are checked.
func Collect(dir string, lim Limits) (files []PackedFile, ignored []string, err error) {
	var total int64
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if Ignored(d.Name()) {
			ignored = append(ignored, rel)
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if _, _, err := entryPath(rel); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is a %s; a script folder may hold only regular files and folders", rel, modeName(d.Type()))
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Size()
		if total > lim.MaxBytes {
			return fmt.Errorf("the folder's files are larger than %d bytes in total", lim.MaxBytes)
		}
		files = append(files, PackedFile{Path: rel, Size: info.Size(), Exec: info.Mode()&0o111 != 0})
		if len(files) > lim.MaxFiles {
			return fmt.Errorf("the folder holds more than %d files", lim.MaxFiles)
		}
		return nil
	})
	return files, ignored, err
}

func modeName(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// Pack writes files of dir (from Collect) to w as a bundle: a gzip-compressed tar whose entries are the
// files' paths relative to the folder. The output is deterministic (sorted entries, fixed timestamps and
// owners, no gzip name or time), so packing the same content twice gives the same bytes.
func Pack(w io.Writer, dir string, files []PackedFile) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	epoch := time.Unix(0, 0).UTC()
	for _, f := range files {
		mode := int64(0o644)
		if f.Exec {
			mode = 0o755
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.Path, Size: f.Size, Mode: mode, ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if err := copyFile(tw, filepath.Join(dir, filepath.FromSlash(f.Path)), f.Size); err != nil {
			return fmt.Errorf("pack %s: %w", f.Path, err)
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func copyFile(w io.Writer, p string, size int64) error {
	fh, err := os.Open(p)
	if err != nil {
		return err
	}
	defer fh.Close()
	n, err := io.Copy(w, io.LimitReader(fh, size))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("file changed while packing (%d bytes, expected %d)", n, size)
	}
	return nil
}

// bundleKey returns the object key of script name under prefix.
func bundleKey(prefix, name string) string { return prefix + name + BundleSuffix }

// NameFromKey returns the script name of a bundle object key under prefix, or "" when the key is not a
// bundle (another file, a nested key, an invalid name).
func NameFromKey(prefix, key string) string {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return ""
	}
	name, ok := strings.CutSuffix(rest, BundleSuffix)
	if !ok || path.Base(name) != name || validName(name) != nil {
		return ""
	}
	return name
}
