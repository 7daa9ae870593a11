package repository

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// tarEntry is one entry of a test archive; Type 0 means a regular file.
type tarEntry struct {
	Name     string
	Body     string
	Type     byte
	Linkname string
	Mode     int64
	Size     int64 // overrides len(Body) in the header when set
}

func file(name, body string) tarEntry { return tarEntry{Name: name, Body: body} }

func makeTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.Mode
		if mode == 0 {
			mode = 0o644
		}
		size := int64(len(e.Body))
		if typ != tar.TypeReg {
			size = 0
		}
		hdr := &tar.Header{Name: e.Name, Typeflag: typ, Linkname: e.Linkname, Mode: mode, Size: size}
		if typ == tar.TypeXGlobalHeader {
			hdr = &tar.Header{Typeflag: typ, PAXRecords: map[string]string{"comment": "abc"}}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := io.WriteString(tw, e.Body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func makeBundle(t testing.TB, entries ...tarEntry) []byte { return gz(t, makeTar(t, entries...)) }

// scriptBundle is a valid bundle whose scrape returns value.
func scriptBundle(t testing.TB, value string) []byte {
	return makeBundle(t, file("scraper.py", "def scrape(params):\n    return "+value+"\n"))
}

var testLimits = Limits{MaxBytes: 1 << 20, MaxFiles: 50}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func TestExtractAcceptsAndNormalizes(t *testing.T) {
	t.Parallel()
	dst := t.TempDir()
	archive := makeBundle(t,
		tarEntry{Type: tar.TypeXGlobalHeader},
		tarEntry{Name: "./", Type: tar.TypeDir, Mode: 0o755},
		file("./scraper.py", "def scrape(p): return 1\n"),
		tarEntry{Name: "lib/", Type: tar.TypeDir, Mode: 0o755},
		file("lib/helper.py", "X = 1\n"),
		tarEntry{Name: "bin/run.sh", Body: "#!/bin/sh\n", Mode: 0o755},
		file(".env", "SECRET=1"),
		file(".git/config", "[core]"),
		file(".git/__pycache__/x.pyc", "junk"), // hidden: left out with all it holds
	)
	inv, err := ExtractTarGz(bytes.NewReader(archive), dst, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	got := listDir(t, dst)
	want := []string{"bin", "bin/run.sh", "lib", "lib/helper.py", "scraper.py"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("extracted %v, want %v", got, want)
	}
	if len(inv) != 3 || inv[0].Path != "bin/run.sh" || !inv[0].Exec || inv[2].Path != "scraper.py" || inv[2].Exec {
		t.Fatalf("inventory %+v", inv)
	}
	if st, _ := os.Stat(filepath.Join(dst, "bin/run.sh")); st.Mode().Perm()&0o111 == 0 {
		t.Error("executable bit lost")
	}
	if err := VerifyDir(dst, inv); err != nil {
		t.Fatalf("VerifyDir on a fresh extraction: %v", err)
	}
	// The key depends on content only, not on the archive's order or metadata.
	dst2 := t.TempDir()
	inv2, err := ExtractTar(bytes.NewReader(makeTar(t,
		file("lib/helper.py", "X = 1\n"),
		tarEntry{Name: "bin/run.sh", Body: "#!/bin/sh\n", Mode: 0o700},
		file("scraper.py", "def scrape(p): return 1\n"),
	)), dst2, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	if inv.Key() != inv2.Key() {
		t.Errorf("keys differ for equal content: %s %s", inv.Key(), inv2.Key())
	}
}

func TestExtractRejects(t *testing.T) {
	t.Parallel()
	ok := file("scraper.py", "def scrape(p): return 1\n")
	for name, tc := range map[string]struct {
		entries []tarEntry
		lim     Limits
		want    string
	}{
		"absolute path":         {entries: []tarEntry{ok, file("/etc/evil", "x")}, want: "absolute"},
		"dot-dot":               {entries: []tarEntry{ok, file("../evil", "x")}, want: "'..'"},
		"dot-dot inside":        {entries: []tarEntry{ok, file("lib/../../evil", "x")}, want: "'..'"},
		"empty component":       {entries: []tarEntry{ok, file("lib//x", "x")}, want: "empty"},
		"backslash":             {entries: []tarEntry{ok, file(`..\evil`, "x")}, want: "backslash"},
		"symlink escaping":      {entries: []tarEntry{ok, {Name: "link", Type: tar.TypeSymlink, Linkname: "/etc"}}, want: "symbolic link"},
		"symlink inside":        {entries: []tarEntry{ok, {Name: "link", Type: tar.TypeSymlink, Linkname: "scraper.py"}}, want: "symbolic link"},
		"hard link":             {entries: []tarEntry{ok, {Name: "link", Type: tar.TypeLink, Linkname: "scraper.py"}}, want: "hard link"},
		"device":                {entries: []tarEntry{ok, {Name: "dev", Type: tar.TypeChar}}, want: "device"},
		"fifo":                  {entries: []tarEntry{ok, {Name: "fifo", Type: tar.TypeFifo}}, want: "named pipe"},
		"duplicate":             {entries: []tarEntry{ok, file("a.py", "1"), file("./a.py", "2")}, want: "twice"},
		"file over folder":      {entries: []tarEntry{ok, file("lib/x.py", "1"), file("lib", "2")}, want: "invalid script bundle"},
		"bytecode cache":        {entries: []tarEntry{ok, file("__pycache__/scraper.cpython-311.pyc", "x")}, want: "bytecode"},
		"nested bytecode cache": {entries: []tarEntry{ok, file("lib/__pycache__/helper.pyc", "x")}, want: "bytecode"},
		"bytecode cache folder": {entries: []tarEntry{ok, {Name: "__pycache__/", Type: tar.TypeDir}}, want: "bytecode"},
		"bare bytecode":         {entries: []tarEntry{ok, file("lib/helper.pyc", "x")}, want: "bytecode"},
		"optimised bytecode":    {entries: []tarEntry{ok, file("helper.pyo", "x")}, want: "bytecode"},
		"no entry point":        {entries: []tarEntry{file("other.py", "x")}, want: "no scraper.py"},
		"entry point is folder": {entries: []tarEntry{{Name: "scraper.py/", Type: tar.TypeDir}, file("scraper.py/x", "1")}, want: "no scraper.py"},
		"entry point nested":    {entries: []tarEntry{file("sub/scraper.py", "x")}, want: "no scraper.py"},
		"too many entries":      {entries: append([]tarEntry{ok}, manyFiles(10)...), lim: Limits{MaxBytes: 1 << 20, MaxFiles: 5}, want: "more than 5 entries"},
		"too large":             {entries: []tarEntry{ok, file("big", strings.Repeat("x", 2000))}, lim: Limits{MaxBytes: 1000, MaxFiles: 10}, want: "larger than 1000"},
		"hidden file too large": {entries: []tarEntry{ok, file(".big", strings.Repeat("x", 2000))}, lim: Limits{MaxBytes: 1000, MaxFiles: 10}, want: "larger than 1000"},
		"too deep":              {entries: []tarEntry{ok, file(strings.Repeat("d/", 40)+"x", "1")}, want: "deep"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			lim := tc.lim
			if lim == (Limits{}) {
				lim = testLimits
			}
			parent := t.TempDir()
			dst := filepath.Join(parent, "dst")
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			_, err := ExtractTarGz(bytes.NewReader(makeBundle(t, tc.entries...)), dst, lim)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, ErrInvalidBundle) {
				t.Fatalf("err = %v, want ErrInvalidBundle mentioning %q", err, tc.want)
			}
			if got := listDir(t, parent); len(got) > 0 && !strings.HasPrefix(got[0], "dst") {
				t.Fatalf("something was written outside dst: %v", got)
			}
		})
	}
}

func manyFiles(n int) []tarEntry {
	var out []tarEntry
	for i := range n {
		out = append(out, file("f"+strings.Repeat("x", i), "1"))
	}
	return out
}

func TestExtractBoundsCompressionBombs(t *testing.T) {
	t.Parallel()
	// 8 MiB of zeros compress to ~8 KiB; the limit stops extraction after 1 MiB.
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	_ = tw.WriteHeader(&tar.Header{Name: "scraper.py", Typeflag: tar.TypeReg, Mode: 0o644, Size: 8 << 20})
	_, _ = tw.Write(make([]byte, 8<<20))
	_ = tw.Close()
	bomb := gz(t, raw.Bytes())
	if len(bomb) > 1<<20 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	_, err := ExtractTarGz(bytes.NewReader(bomb), t.TempDir(), testLimits)
	if !errors.Is(err, ErrInvalidBundle) {
		t.Fatalf("err = %v", err)
	}
	// Trailing data after the archive counts against the limit too.
	padded := append(makeTar(t, file("scraper.py", "x")), make([]byte, 4<<20)...)
	if _, err := ExtractTar(bytes.NewReader(padded), t.TempDir(), testLimits); !errors.Is(err, ErrInvalidBundle) {
		t.Fatalf("padding: err = %v", err)
	}
}

func TestExtractDetectsCorruptStreams(t *testing.T) {
	t.Parallel()
	good := makeBundle(t, file("scraper.py", strings.Repeat("def scrape(p): return 1\n", 50)))
	truncated := good[:len(good)-10]
	if _, err := ExtractTarGz(bytes.NewReader(truncated), t.TempDir(), testLimits); !errors.Is(err, ErrInvalidBundle) {
		t.Errorf("truncated: err = %v", err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)-6] ^= 0xff // inside the CRC-32 trailer
	if _, err := ExtractTarGz(bytes.NewReader(flipped), t.TempDir(), testLimits); !errors.Is(err, ErrInvalidBundle) {
		t.Errorf("bad CRC: err = %v", err)
	}
	if _, err := ExtractTarGz(strings.NewReader("not gzip at all"), t.TempDir(), testLimits); !errors.Is(err, ErrInvalidBundle) {
		t.Errorf("not gzip: err = %v", err)
	}
	// A read error of the underlying stream (a dropped connection) is passed through, not called invalid.
	boom := errors.New("connection reset")
	r := io.MultiReader(bytes.NewReader(good[:20]), errReader{boom})
	if _, err := ExtractTarGz(r, t.TempDir(), testLimits); !errors.Is(err, boom) {
		t.Errorf("read error: err = %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestVerifyDirDetectsChanges(t *testing.T) {
	t.Parallel()
	for name, damage := range map[string]func(dir string) error{
		"changed": func(d string) error {
			return os.WriteFile(filepath.Join(d, "scraper.py"), []byte("def scrape(p): return 2\n"), 0o644)
		},
		"removed":  func(d string) error { return os.Remove(filepath.Join(d, "lib/helper.py")) },
		"added":    func(d string) error { return os.WriteFile(filepath.Join(d, "lib/extra.py"), nil, 0o644) },
		"symlink":  func(d string) error { return os.Symlink("/etc/passwd", filepath.Join(d, "lib/passwd")) },
		"replaced": func(d string) error { return os.WriteFile(filepath.Join(d, "lib/helper.py"), []byte("Y = 2\n"), 0o644) },
		"planted bytecode": func(d string) error {
			return os.WriteFile(filepath.Join(d, "__pycache__", "scraper.cpython-311.pyc"), []byte("x"), 0o644)
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			inv, err := ExtractTarGz(bytes.NewReader(makeBundle(t, file("scraper.py", "def scrape(p): return 1\n"), file("lib/helper.py", "X = 1\n"))), dir, testLimits)
			if err != nil {
				t.Fatal(err)
			}
			// An empty folder is not damage (the file list is what is checked).
			if err := os.MkdirAll(filepath.Join(dir, "__pycache__"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := VerifyDir(dir, inv); err != nil {
				t.Fatalf("before: %v", err)
			}
			if err := damage(dir); err != nil {
				t.Fatal(err)
			}
			if err := VerifyDir(dir, inv); err == nil {
				t.Fatal("damage not detected")
			}
		})
	}
}

func TestPackRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write(t, filepath.Join(dir, "scraper.py"), "def scrape(p): return 1\n")
	write(t, filepath.Join(dir, "requirements.txt"), "requests==2.32.3\n")
	write(t, filepath.Join(dir, "testdata", "page.html"), "<html></html>")
	write(t, filepath.Join(dir, ".DS_Store"), "junk")
	write(t, filepath.Join(dir, "__pycache__", "scraper.pyc"), "junk")
	files, ignored, err := Collect(dir, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 || strings.Join(ignored, ",") != ".DS_Store,__pycache__" {
		t.Fatalf("files %v, ignored %v", files, ignored)
	}
	var a, b bytes.Buffer
	if err := Pack(&a, dir, files); err != nil {
		t.Fatal(err)
	}
	if err := Pack(&b, dir, files); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("packing is not deterministic")
	}
	inv, err := ExtractTarGz(bytes.NewReader(a.Bytes()), t.TempDir(), testLimits)
	if err != nil {
		t.Fatal(err)
	}
	if len(inv) != 3 || inv[0].Path != "requirements.txt" || inv[2].Path != "testdata/page.html" {
		t.Fatalf("inventory %+v", inv)
	}

	// Symbolic links are refused, and so are folders over the limits.
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "passwd")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Collect(dir, testLimits); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symlink: err = %v", err)
	}
	os.Remove(filepath.Join(dir, "passwd"))
	if _, _, err := Collect(dir, Limits{MaxBytes: 10, MaxFiles: 10}); err == nil {
		t.Error("size limit not enforced")
	}
	if _, _, err := Collect(dir, Limits{MaxBytes: 1 << 20, MaxFiles: 2}); err == nil {
		t.Error("file limit not enforced")
	}
}

func TestNameFromKey(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"scripts/example_scraper.tar.gz": "example_scraper",
		"scripts/a.tar.gz":               "a",
		"scripts/Upper.tar.gz":           "",
		"scripts/sub/x.tar.gz":           "",
		"scripts/x.zip":                  "",
		"other/x.tar.gz":                 "",
		"scripts/.hidden.tar.gz":         "",
	} {
		if got := NameFromKey("scripts/", key); got != want {
			t.Errorf("NameFromKey(%q) = %q, want %q", key, got, want)
		}
	}
}

// checkExtraction runs ExtractTar on data in a fresh folder under root and checks the invariants that hold
// whatever the input: extraction stays inside its folder, writes only regular files and folders, respects
// the limits, and on success reports an inventory that matches what is on disk.
func checkExtraction(t *testing.T, root string, data []byte, lim Limits) {
	// One folder per input under the fuzz target's TempDir: t.TempDir's per-input bookkeeping is slow.
	parent, err := os.MkdirTemp(root, "in-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(parent)
	dst := filepath.Join(parent, "dst")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	inv, err := ExtractTar(bytes.NewReader(data), dst, lim)
	if entries, _ := os.ReadDir(parent); len(entries) != 1 {
		t.Fatalf("extraction wrote next to its folder: %v", entries)
	}
	var total int64
	files := 0
	_ = filepath.Walk(dst, func(p string, info os.FileInfo, werr error) error {
		if werr != nil || p == dst {
			return nil
		}
		if !info.Mode().IsRegular() && !info.IsDir() {
			t.Fatalf("%s is neither a file nor a folder: %v", p, info.Mode())
		}
		if info.Mode().IsRegular() {
			total += info.Size()
			files++
		}
		return nil
	})
	if total > lim.MaxBytes || files > lim.MaxFiles {
		t.Fatalf("limits exceeded: %d bytes, %d files", total, files)
	}
	if err == nil {
		if err := VerifyDir(dst, inv); err != nil {
			t.Fatalf("inventory does not match the extraction: %v", err)
		}
		if !hasEntryPoint(inv) {
			t.Fatal("accepted a bundle without scraper.py")
		}
	} else if !errors.Is(err, ErrInvalidBundle) {
		t.Fatalf("an in-memory archive failed with something other than ErrInvalidBundle: %v", err)
	}
}

var fuzzLimits = Limits{MaxBytes: 64 << 10, MaxFiles: 20}

// FuzzExtractTar feeds arbitrary bytes to the extractor (the tar parser's side).
func FuzzExtractTar(f *testing.F) {
	ok := file("scraper.py", "def scrape(p): return 1\n")
	for _, entries := range [][]tarEntry{
		{ok},
		{ok, file("lib/helper.py", "X=1"), {Name: "lib/", Type: tar.TypeDir}},
		{ok, file("../escape", "x")},
		{ok, {Name: "link", Type: tar.TypeSymlink, Linkname: "../../etc/passwd"}},
		{{Type: tar.TypeXGlobalHeader}, file("./scraper.py", "x")},
	} {
		f.Add(makeTar(f, entries...))
	}
	f.Add([]byte{})
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) { checkExtraction(t, root, data, fuzzLimits) })
}

// FuzzExtractEntries builds well-formed archives from fuzzed entry names, types and sizes (the extractor's
// own rules' side): raw tar bytes rarely get past the header checksum, and their inputs are slow to
// minimize.
func FuzzExtractEntries(f *testing.F) {
	f.Add("scraper.py\nlib/x.py", []byte{0, 0}, []byte("def scrape(p): return 1\n"))
	f.Add("scraper.py\n../x", []byte{0, 0}, []byte("abc"))
	f.Add("scraper.py\nl\nl/x", []byte{0, 2, 0}, []byte("abc"))
	f.Add("./scraper.py\n/etc/x\na/./b\n.git/config", []byte{0, 1, 5, 0}, []byte("abcdef"))
	types := []byte{tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo, tar.TypeChar}
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, names string, kinds []byte, content []byte) {
		var entries []tarEntry
		for i, name := range strings.Split(names, "\n") {
			e := tarEntry{Name: name, Linkname: "scraper.py"}
			if i < len(kinds) {
				e.Type = types[int(kinds[i])%len(types)]
				if kinds[i]&0x80 != 0 {
					e.Mode = 0o755
				}
			}
			if e.Type == 0 || e.Type == tar.TypeReg {
				n := 0
				if len(content) > 0 {
					n = (i * 7) % (len(content) + 1)
				}
				e.Body = string(content[:n])
			}
			entries = append(entries, e)
		}
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range entries {
			typ := e.Type
			if typ == 0 {
				typ = tar.TypeReg
			}
			hdr := &tar.Header{Name: e.Name, Typeflag: typ, Linkname: e.Linkname, Mode: max(e.Mode, 0o644), Format: tar.FormatPAX}
			if typ == tar.TypeReg {
				hdr.Size = int64(len(e.Body))
			}
			if tw.WriteHeader(hdr) != nil {
				return // a name tar cannot encode
			}
			_, _ = io.WriteString(tw, e.Body)
		}
		_ = tw.Close()
		checkExtraction(t, root, buf.Bytes(), fuzzLimits)
	})
}

// FuzzEntryPath checks the name rules on their own: an accepted name is relative, clean and inside.
func FuzzEntryPath(f *testing.F) {
	for _, s := range []string{"scraper.py", "./a/b", "../x", "/abs", "a//b", "a/./b", ".hidden", "a/__pycache__/x", "a\\b", "./", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		clean, skip, err := entryPath(name)
		if err != nil || skip {
			return
		}
		if filepath.IsAbs(clean) || clean != filepath.ToSlash(filepath.Clean(clean)) || strings.HasPrefix(clean, "..") || clean == "." {
			t.Fatalf("entryPath(%q) accepted %q", name, clean)
		}
		if !filepath.IsLocal(clean) {
			t.Fatalf("entryPath(%q) = %q is not local", name, clean)
		}
	})
}
