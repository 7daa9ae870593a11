// Package testkit holds what the test suites in this module (e2e, faults, observability, lambda) need
// alike and what needs the platform itself: building its binaries once, the fixture scripts the suites'
// workers serve, and a copy of a script folder. Helpers every module's tests use (process output, free
// ports) live in shared/proctest; the fixture scripts in shared/scripttest.
package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Scripts are the fixture scripts (shared/scripttest) that every suite's workers serve.
var Scripts = []string{
	"async_echo", "dep_broken", "dep_v1", "dep_v2", "echo", "envdump", "noop", "prints_progress", "raiser", "sleeper",
	"threads_shared",
}

// Binary is a main package to build: Pkg inside Module (a folder of the repository), written as Out.
type Binary struct{ Module, Pkg, Out string }

// Gateway and Worker are the two binaries every suite starts.
var (
	Gateway = Binary{"functions", "./cmd/gateway-local", "gateway-local"}
	Worker  = Binary{"worker", "./cmd/worker", "worker"}
)

// RepoRoot returns the repository root, from a test package two levels below it.
func RepoRoot() (string, error) { return filepath.Abs("../..") }

// Build compiles bins into dir, printing the compiler's output to stderr on failure.
func Build(dir string, bins ...Binary) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	for _, b := range bins {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.Out), b.Pkg)
		cmd.Dir = filepath.Join(root, b.Module)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s: %w", b.Out, err)
		}
	}
	return nil
}

// CopyTree copies the folder src into dst, leaving out __pycache__ folders.
func CopyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			if d.Name() == "__pycache__" {
				return filepath.SkipDir
			}
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
