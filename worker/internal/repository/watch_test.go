package repository

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// resolveVersion resolves name and returns its version, failing the test on an error.
func resolveVersion(t *testing.T, repo *Local, name string) string {
	t.Helper()
	s, err := repo.Resolve(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s.Version
}

// Tasks of an unchanged script reuse its resolution (no walk of its folder); every kind of change shows on
// the very next Resolve.
func TestLocalReusesAResolutionUntilAChange(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the change watcher is Linux's inotify; elsewhere every Resolve walks")
	}
	t.Parallel()
	root := t.TempDir()
	dir := filepath.Join(root, "s")
	write(t, filepath.Join(dir, "scraper.py"), "def scrape(p): return 1\n")
	write(t, filepath.Join(dir, "lib", "helper.py"), "X = 1\n")
	write(t, filepath.Join(root, "other", "scraper.py"), "def scrape(p): return 'other'\n")
	repo, err := NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	frozen := time.Unix(1e9, 0) // reuse may not end with localRecheck here, however slow the machine
	repo.now = func() time.Time { return frozen }
	version := resolveVersion(t, repo, "s")
	walks := repo.walks.Load()
	for range 5 {
		if v := resolveVersion(t, repo, "s"); v != version {
			t.Fatalf("version %s, then %s with nothing changed", version, v)
		}
	}
	if n := repo.walks.Load() - walks; n != 0 {
		t.Fatalf("%d walks of an unchanged script", n)
	}
	// What walkScript leaves out is not a change either.
	write(t, filepath.Join(dir, "__pycache__", "scraper.cpython-311.pyc"), "junk")
	write(t, filepath.Join(dir, ".scraper.py.swp"), "junk")
	resolveVersion(t, repo, "s")
	if n := repo.walks.Load() - walks; n != 0 {
		t.Fatalf("%d walks after changes to ignored entries", n)
	}

	changes := []struct {
		what   string
		change func()
	}{
		{"an edit of the entry point", func() { write(t, filepath.Join(dir, "scraper.py"), "def scrape(p): return 2\n") }},
		{"an edit in a subfolder", func() { write(t, filepath.Join(dir, "lib", "helper.py"), "X = 2\n") }},
		{"a new file in a new subfolder", func() { write(t, filepath.Join(dir, "lib", "deep", "data.txt"), "d") }},
		{"an edit in that new subfolder", func() { write(t, filepath.Join(dir, "lib", "deep", "data.txt"), "e") }},
		{"a removed file", func() { must(t, os.Remove(filepath.Join(dir, "lib", "helper.py"))) }},
		{"a renamed subfolder", func() { must(t, os.Rename(filepath.Join(dir, "lib"), filepath.Join(dir, "lib2"))) }},
		{"the folder replaced by a symlink to another script", func() {
			must(t, os.Rename(dir, filepath.Join(root, "s-old")))
			must(t, os.Symlink(filepath.Join(root, "other"), dir))
		}},
		{"an edit of the symlink's target", func() {
			write(t, filepath.Join(root, "other", "scraper.py"), "def scrape(p): return 'other 2'\n")
		}},
	}
	seen := map[string]string{version: "the first version"}
	for _, c := range changes {
		c.change()
		v := resolveVersion(t, repo, "s")
		if was, ok := seen[v]; ok {
			t.Fatalf("after %s the version is %s, that of %s", c.what, v, was)
		}
		seen[v] = c.what
		// Once resolved again, the script is reused again.
		walks := repo.walks.Load()
		if v2 := resolveVersion(t, repo, "s"); v2 != v || repo.walks.Load() != walks {
			t.Fatalf("after %s: version %s then %s, %d walks", c.what, v, v2, repo.walks.Load()-walks)
		}
	}
	// A script removed is not found at once.
	must(t, os.Remove(dir))
	if _, err := repo.Resolve(context.Background(), "s"); err == nil {
		t.Fatal("a removed script still resolves")
	}
}

// A resolution is reused for localRecheck at most, changes seen or not: inotify misses changes made on
// another machine to a shared folder.
func TestLocalRechecksAfterAWhileWithNoChangeSeen(t *testing.T) {
	t.Parallel()
	repo, _ := localWithScript(t)
	now := time.Unix(1e9, 0)
	repo.now = func() time.Time { return now }
	resolveVersion(t, repo, "s")
	now = now.Add(localRecheck - time.Millisecond)
	resolveVersion(t, repo, "s")
	walks := repo.walks.Load()
	now = now.Add(time.Millisecond)
	resolveVersion(t, repo, "s")
	if n := repo.walks.Load() - walks; n != 1 {
		t.Fatalf("%d walks once the resolution is %v old, want 1", n, localRecheck)
	}
}

// Without the watcher (no inotify, or the kernel's limit on watches reached) every Resolve walks, and
// edits still show at once.
func TestLocalWithoutTheWatcherWalksEveryTime(t *testing.T) {
	t.Parallel()
	repo, root := localWithScript(t)
	repo.mu.Lock()
	if repo.watcher != nil {
		repo.stopWatching()
	}
	repo.mu.Unlock()
	v1 := resolveVersion(t, repo, "s")
	v2 := resolveVersion(t, repo, "s")
	write(t, filepath.Join(root, "s", "scraper.py"), "def scrape(p): return 2\n")
	v3 := resolveVersion(t, repo, "s")
	if v1 != v2 || v3 == v2 || repo.walks.Load() != 3 {
		t.Fatalf("versions %s %s %s, %d walks; want the first two equal, the third new, 3 walks", v1, v2, v3, repo.walks.Load())
	}
}

// localWithScript returns a Local over a new folder holding script "s", and the folder.
func localWithScript(t *testing.T) (*Local, string) {
	t.Helper()
	root := t.TempDir()
	write(t, filepath.Join(root, "s", "scraper.py"), "def scrape(p): return 1\n")
	repo, err := NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	return repo, root
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
