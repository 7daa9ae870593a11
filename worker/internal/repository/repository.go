package repository

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
)

// EntryPoint is the file every script folder must hold.
const EntryPoint = "scraper.py"

// ErrNotFound reports a script name the repository does not have.
var ErrNotFound = errors.New("script not found")

// Script is a resolved script, ready to run.
type Script struct {
	Name string
	// Dir is an absolute local folder holding EntryPoint.
	Dir string
	// Version identifies the script's content (for the local type: a hash of its files).
	Version string
	// Content is the same for the same files, whatever the version says: a new git commit, or an S3
	// upload, that leaves the script's files as they were changes Version but not Content. Warm runners
	// are kept per content, so such a change does not restart them.
	Content string
}

// Repository resolves script names.
type Repository interface {
	// Resolve returns the script called name. An invalid or unknown name is ErrNotFound.
	Resolve(ctx context.Context, name string) (Script, error)
	// Describe says where scripts come from, for logs and error messages (never credentials).
	Describe() string
}

// Refresher is implemented by repositories that cache (s3, git, http).
type Refresher interface {
	// Invalidate makes the next Resolve of name, or of every script when name is "", ask the remote
	// whatever the cache's TTL says.
	Invalidate(name string)
}

// validName checks a script name before any lookup: no path traversal, absolute paths or hidden files.
func validName(name string) error { return contract.ValidateScriptName(name) }

// Local is a repository in a local folder: script NAME is the folder ROOT/NAME.
type Local struct {
	root string

	mu       sync.Mutex
	versions map[string]localVersion // by script folder
	// watcher counts changes under the folders Resolve has walked (nil where inotify is unavailable, or
	// once it failed): a resolution is reused while the count it was taken at stands, so a steady stream
	// of tasks does not stat the script folder for each one.
	watcher  *changeWatcher
	resolved map[string]localResolution // by script name
	walks    atomic.Int64               // resolutions that walked the script folder (tests read it)
	now      func() time.Time
}

// errVanished is a folder the watcher was asked to watch that is gone since it was listed.
var errVanished = errors.New("folder vanished")

// localRecheck bounds how long a resolution is reused even with no change seen: inotify misses changes
// made on another machine to a shared folder (NFS, or a folder a Docker Desktop VM mounts from its host).
const localRecheck = time.Second

// localResolution is a Resolve's answer, the watcher's change count before it looked, and when.
type localResolution struct {
	script  Script
	changes uint64
	at      time.Time
}

// localVersion remembers a folder's content hash with the stat fingerprint it was computed for.
type localVersion struct{ stamp, version string }

var _ Repository = (*Local)(nil)

// NewLocal returns a repository over the folder root, which must exist.
func NewLocal(root string) (*Local, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("script folder %q: %w", root, err)
	}
	abs, err = filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("script folder %q: %w", root, err)
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("script folder %q is not a directory", root)
	}
	l := &Local{root: abs, watcher: newChangeWatcher(), now: time.Now}
	if l.watcher != nil {
		runtime.AddCleanup(l, func(w *changeWatcher) { w.close() }, l.watcher)
	}
	return l, nil
}

// Describe implements Repository.
func (l *Local) Describe() string { return "local folder " + l.root }

// Resolve implements Repository. The name is validated before it touches the file system, and the resolved
// folder must lie inside the root even after symlinks are followed.
func (l *Local) Resolve(ctx context.Context, name string) (Script, error) {
	if err := validName(name); err != nil {
		return Script{}, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	if s, ok := l.unchanged(name); ok {
		return s, nil
	}
	at := l.now()
	changes, cacheable := l.watchRoot()
	// Every folder the walk enters is watched before its entries are read: a change made before the watch
	// shows in what the walk reads, one made after it in the count.
	enter := func(dir string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if !cacheable || l.watcher == nil {
			cacheable = false
			return
		}
		if err := l.watcher.watch(dir); err != nil {
			cacheable = false
			if !errors.Is(err, errVanished) { // vanished: changed under the walk, only not cached this time
				l.stopWatching()
			}
		}
	}
	if !cacheable {
		enter = nil
	}
	s, err := l.resolve(ctx, name, enter)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil && cacheable && l.watcher != nil {
		if l.resolved == nil {
			l.resolved = map[string]localResolution{}
		}
		l.resolved[name] = localResolution{script: s, changes: changes, at: at}
	}
	return s, err
}

// unchanged returns name's last resolution when nothing under the folders it came from has changed since,
// and it is younger than localRecheck.
func (l *Local) unchanged(name string) (Script, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.resolved[name]
	if !ok || l.watcher == nil || l.now().Sub(r.at) >= localRecheck {
		return Script{}, false
	}
	changes, ok := l.watcher.count()
	if !ok {
		l.stopWatching()
		return Script{}, false
	}
	return r.script, changes == r.changes
}

// watchRoot watches the root (where a script's folder or its symlink is replaced) and returns the change
// count before the walk; false: nothing is watched (no inotify, or the kernel refused), and the walk's
// result is not cached.
func (l *Local) watchRoot() (uint64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.watcher == nil {
		return 0, false
	}
	if err := l.watcher.watch(l.root); err != nil {
		l.stopWatching()
		return 0, false
	}
	changes, ok := l.watcher.count()
	if !ok {
		l.stopWatching()
	}
	return changes, ok
}

// stopWatching gives the watcher up: every Resolve walks from now on. l.mu is held.
func (l *Local) stopWatching() {
	l.watcher.close()
	l.watcher, l.resolved = nil, nil
}

// resolve finds and hashes script name, walking its folder; enter (if not nil) is called on each folder
// the walk enters, before its entries are read.
func (l *Local) resolve(ctx context.Context, name string, enter func(dir string)) (Script, error) {
	l.walks.Add(1)
	dir, err := filepath.EvalSymlinks(filepath.Join(l.root, name))
	if err != nil {
		return Script{}, fmt.Errorf("%w: no script named %q in %s", ErrNotFound, name, l.Describe())
	}
	if !isWithin(l.root, dir) {
		return Script{}, fmt.Errorf("%w: script %q points outside the repository", ErrNotFound, name)
	}
	if st, err := os.Stat(filepath.Join(dir, EntryPoint)); err != nil || !st.Mode().IsRegular() {
		return Script{}, fmt.Errorf("%w: script folder %q has no %s", ErrNotFound, name, EntryPoint)
	}
	version, err := l.version(ctx, dir, enter)
	if err != nil {
		return Script{}, fmt.Errorf("hash script %q: %w", name, err)
	}
	return Script{Name: name, Dir: dir, Version: version, Content: version}, nil
}

// version returns the content hash of dir, recomputed only when the files' names, sizes or modification
// times change: every walk stats the folder's files, but only a changed script is read and hashed again. (A
// same-size rewrite within one tick of the file system's clock would go unnoticed; on the file systems we
// run on that tick is a nanosecond.)
func (l *Local) version(ctx context.Context, dir string, enter func(dir string)) (string, error) {
	files, err := walkScript(ctx, dir, enter)
	if err != nil {
		return "", err
	}
	var stamp strings.Builder
	for _, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&stamp, "%s\x00%d\x00%d\x00", f, st.Size(), st.ModTime().UnixNano())
	}
	l.mu.Lock()
	cached, ok := l.versions[dir]
	l.mu.Unlock()
	if ok && cached.stamp == stamp.String() {
		return cached.version, nil
	}
	version, err := hashFiles(dir, files)
	if err != nil {
		return "", err
	}
	l.mu.Lock()
	if l.versions == nil {
		l.versions = map[string]localVersion{}
	}
	l.versions[dir] = localVersion{stamp: stamp.String(), version: version}
	l.mu.Unlock()
	return version, nil
}

// isWithin reports whether dir lies inside root (both absolute and free of symlinks).
func isWithin(root, dir string) bool {
	rel, err := filepath.Rel(root, dir)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// walkScript lists the regular files under dir that make up a script, sorted: hidden entries and
// __pycache__ are left out, so the version changes exactly when the script's content does. enter (if not
// nil) is called on each folder it enters, before its entries are read.
func walkScript(ctx context.Context, dir string, enter func(dir string)) (files []string, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != dir && Ignored(d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir() && enter != nil:
			enter(path)
		case d.Type().IsRegular():
			files = append(files, path)
		}
		return ctx.Err()
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	return files, nil
}

// hashFiles hashes the names and contents of files (under dir).
func hashFiles(dir string, files []string) (string, error) {
	h := sha256.New()
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f)
		fmt.Fprintf(h, "%s\x00", filepath.ToSlash(rel))
		fh, err := os.Open(f)
		if err != nil {
			return "", err
		}
		n, err := io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "\x00%d\x00", n)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16], nil
}
