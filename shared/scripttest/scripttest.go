// Package scripttest holds the fixture scripts of every test suite in one tree and copies the ones a test
// names into place.
//
// The tree is testdata/scripts: one folder per script, laid out as a script repository lays them out
// (scraper.py, and requirements.txt or manifest.json where a fixture needs them). The runner's unit tests,
// the end-to-end, fault, observability and Lambda suites and the bench tool all take their scripts from
// it, so a fixture is written once. Fixtures that report the pids of the processes they start import
// hostpids, which is kept once (testdata/hostpids.py) and copied into every fixture folder whose Python
// imports it.
//
// Copies are world-readable (folders 0755, files 0644): the suites run scripts as another user.
package scripttest

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

//go:embed all:testdata/scripts testdata/hostpids.py
var tree embed.FS

const (
	root    = "testdata/scripts"
	libName = "hostpids.py"
)

// Names returns the name of every fixture script, sorted.
func Names() []string {
	entries, err := fs.ReadDir(tree, root)
	if err != nil {
		panic(err) // the tree is embedded: it is there
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// Write copies the named fixtures (every one when names is empty) into dst, each into a folder of its
// name, creating dst if need be. Folders are 0755 and files 0644, so a script run as another user reads
// them. An unknown name is an error.
func Write(dst string, names ...string) error {
	if len(names) == 0 {
		names = Names()
	}
	lib, err := tree.ReadFile(path.Join("testdata", libName))
	if err != nil {
		return err
	}
	for _, name := range names {
		src := path.Join(root, name)
		if st, err := fs.Stat(tree, src); err != nil || !st.IsDir() {
			return fmt.Errorf("scripttest: no fixture script %q (have %s)", name, strings.Join(Names(), ", "))
		}
		needsLib := false
		err := fs.WalkDir(tree, src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			target := filepath.Join(dst, name, filepath.FromSlash(strings.TrimPrefix(p, src)))
			if d.IsDir() {
				if err := os.MkdirAll(target, 0o755); err != nil {
					return err
				}
				return os.Chmod(target, 0o755)
			}
			b, err := tree.ReadFile(p)
			if err != nil {
				return err
			}
			if strings.HasSuffix(p, ".py") && bytes.Contains(b, []byte("import hostpids")) {
				needsLib = true
			}
			return writeFile(target, b)
		})
		if err != nil {
			return fmt.Errorf("scripttest: copy %s: %w", name, err)
		}
		if needsLib {
			if err := writeFile(filepath.Join(dst, name, libName), lib); err != nil {
				return fmt.Errorf("scripttest: copy %s: %w", name, err)
			}
		}
	}
	return nil
}

func writeFile(name string, b []byte) error {
	if err := os.WriteFile(name, b, 0o644); err != nil {
		return err
	}
	return os.Chmod(name, 0o644) // whatever the umask
}

// Copy is Write for a test: it fails t on error.
func Copy(t testing.TB, dst string, names ...string) {
	t.Helper()
	if err := Write(dst, names...); err != nil {
		t.Fatal(err)
	}
}

// Dir copies the named fixtures (every one when names is empty) into a new folder that is removed when t
// ends, and returns that folder. Other users can traverse (not list) the folders above it, so a script run
// as another user reaches its files.
func Dir(t testing.TB, names ...string) string {
	t.Helper()
	dir := ReachableTempDir(t)
	Copy(t, dir, names...)
	return dir
}

// ReachableTempDir returns a new folder, removed when t ends, that other users can traverse (but not list)
// along with every folder above it up to the system's temporary folder: scripts run as another user need
// to reach what a test puts inside it.
func ReachableTempDir(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	tmp := os.TempDir()
	for d := dir; d != tmp && d != "/" && strings.HasPrefix(d, tmp); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// SandboxPython returns a python3 (3.8 or later) that the user uid can run, for tests that run scripts as
// another user: the interpreter named by the environment variable envVar when it is set and works, else
// /usr/bin/python3 or /usr/local/bin/python3 (the one on PATH may live in root's home, out of that user's
// reach). It fails t when there is none.
func SandboxPython(t testing.TB, uid int, envVar string) string {
	t.Helper()
	id := strconv.Itoa(uid)
	for _, p := range []string{os.Getenv(envVar), "/usr/bin/python3", "/usr/local/bin/python3"} {
		if p == "" {
			continue
		}
		cmd := exec.Command("setpriv", "--reuid="+id, "--regid="+id, "--clear-groups", p, "-c", "import sys; assert sys.version_info >= (3, 8)")
		if err := cmd.Run(); err == nil {
			return p
		}
	}
	t.Fatalf("scripts run as uid %d need a python3 (3.8+) that user can run: none found (set %s)", uid, envVar)
	return ""
}

// perTest keeps the fixture folder of each running test, for Path.
var perTest = struct {
	sync.Mutex
	dirs map[testing.TB]*copied
}{dirs: map[testing.TB]*copied{}}

type copied struct {
	dir   string
	names []string
}

// Path returns the folder of the fixture name, copied on first use into a folder of t's own: every call
// with the same t returns the same folder (a warm runner keys its processes on the script's folder), and
// the folder is removed when t ends.
func Path(t testing.TB, name string) string {
	t.Helper()
	perTest.Lock()
	defer perTest.Unlock()
	c := perTest.dirs[t]
	if c == nil {
		c = &copied{dir: ReachableTempDir(t)}
		perTest.dirs[t] = c
		t.Cleanup(func() {
			perTest.Lock()
			delete(perTest.dirs, t)
			perTest.Unlock()
		})
	}
	if !slices.Contains(c.names, name) {
		Copy(t, c.dir, name)
		c.names = append(c.names, name)
	}
	return filepath.Join(c.dir, name)
}
