package repository

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// write writes a file holding fork off (syscall.ForkLock): a child another test forks (git) while the file
// is open would hold it until its exec, and the file's last close, and so inotify's IN_CLOSE_WRITE, would
// come then, after write returned: a change the watch tests would see later than the write (a walk where
// they expect none; seen in CI).
func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	syscall.ForkLock.Lock()
	err := os.WriteFile(path, []byte(content), 0o644)
	syscall.ForkLock.Unlock()
	if err != nil {
		t.Fatal(err)
	}
}

func TestLocalResolve(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	outside := t.TempDir()
	write(t, filepath.Join(root, "good", "scraper.py"), "def scrape(p): return 1\n")
	write(t, filepath.Join(root, "empty", "README"), "no entry point")
	write(t, filepath.Join(outside, "evil", "scraper.py"), "def scrape(p): return 'escaped'\n")
	if err := os.Symlink(filepath.Join(outside, "evil"), filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	repo, err := NewLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	s, err := repo.Resolve(ctx, "good")
	if err != nil {
		t.Fatal(err)
	}
	if s.Dir != filepath.Join(repo.root, "good") || s.Version == "" {
		t.Fatalf("resolved %+v", s)
	}
	for _, name := range []string{"missing", "empty", "escape", "../good", "/etc", ".hidden", ""} {
		if _, err := repo.Resolve(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Errorf("Resolve(%q) = %v, want ErrNotFound", name, err)
		}
	}

	// The version follows the content, and ignores bytecode caches.
	write(t, filepath.Join(root, "good", "__pycache__", "scraper.cpython-311.pyc"), "junk")
	s2, _ := repo.Resolve(ctx, "good")
	if s2.Version != s.Version {
		t.Error("version changed because of __pycache__")
	}
	write(t, filepath.Join(root, "good", "scraper.py"), "def scrape(p): return 2\n")
	s3, _ := repo.Resolve(ctx, "good")
	if s3.Version == s.Version {
		t.Error("version did not change with the content")
	}
}

func TestNewLocalRejectsMissingFolder(t *testing.T) {
	t.Parallel()
	if _, err := NewLocal(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Fatal("want an error for a missing folder")
	}
}
