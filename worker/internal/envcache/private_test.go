package envcache

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scrapeplatform/platform/worker/internal/privatedir"
)

// otherUID owns the planted folders when the tests run as root (nobody).
const otherUID = 65534

// plantEnv writes an environment under dir whose bin/python, if anything ran it, would create mark.
func plantEnv(t *testing.T, dir, mark string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, marker), []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\ntouch " + mark + "\nexit 0\n"
	if err := os.WriteFile(filepath.Join(dir, "bin", "python"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

func chownTree(t *testing.T, dir string, uid int) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPreCreatedRootIsRefused: an ENV_CACHE_DIR that others may write to, or (as root) that another user
// owns, is refused at start, and nothing planted in it runs.
func TestPreCreatedRootIsRefused(t *testing.T) {
	t.Parallel()
	mark := filepath.Join(t.TempDir(), "planted-python-ran")
	roots := map[string]string{}
	open := filepath.Join(t.TempDir(), "envs")
	plantEnv(t, filepath.Join(open, "0123456789abcdef"), mark)
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	roots[open] = "writable by group or others"
	if os.Getuid() == 0 {
		foreign := filepath.Join(t.TempDir(), "envs")
		plantEnv(t, filepath.Join(foreign, "0123456789abcdef"), mark)
		chownTree(t, foreign, otherUID)
		roots[foreign] = "belongs to uid 65534"
	}
	for root, why := range roots {
		_, err := New(Config{Root: root, Python: python(t), Logger: slog.New(slog.DiscardHandler)})
		if !errors.Is(err, privatedir.ErrNotPrivate) || !strings.Contains(err.Error(), why) {
			t.Errorf("New(Root %s) = %v; want a refusal saying %q", root, err, why)
		}
	}
	if _, err := os.Stat(mark); err == nil {
		t.Fatal("a planted interpreter ran")
	}
}

// TestPlantedEnvironmentIsNotRun: an environment under a script's key that the worker did not build (a
// group-writable one, and as root one another user owns) is never executed by verify: it is refused,
// removed and built anew.
func TestPlantedEnvironmentIsNotRun(t *testing.T) {
	t.Parallel()
	variants := []string{"group-writable"}
	if os.Getuid() == 0 {
		variants = append(variants, "another user's")
	}
	for _, variant := range variants {
		t.Run(variant, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, nil)
			req := requirements(t, "conflictpkg==1.0\n")
			b, err := os.ReadFile(req)
			if err != nil {
				t.Fatal(err)
			}
			key := f.cache.Key(b)
			dir := f.cache.envAt(key).Dir
			mark := filepath.Join(t.TempDir(), "planted-python-ran")
			plantEnv(t, dir, mark)
			if variant == "group-writable" {
				if err := os.Chmod(filepath.Join(dir, "bin"), 0o777); err != nil {
					t.Fatal(err)
				}
			} else {
				chownTree(t, dir, otherUID)
			}
			lease, err := f.cache.Get(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			defer lease.Release()
			if _, err := os.Stat(mark); err == nil {
				t.Fatal("verify ran the planted interpreter")
			}
			if f.builds.Load() != 1 {
				t.Errorf("builds = %d; want the planted environment replaced by a build", f.builds.Load())
			}
			if v := importedVersion(t, lease.Env); v != "1.0" {
				t.Errorf("the rebuilt environment imports conflictpkg %q", v)
			}
		})
	}
}
