// Package testkit holds what the test suites in this module (e2e, faults, observability, lambda) need
// alike: building the platform's binaries once, free loopback ports, a copy of a script folder, and a
// goroutine-safe buffer for the output of the processes a test starts.
package testkit

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Scripts are the fixture scripts (shared/scripttest) that every suite's workers serve.
var Scripts = []string{
	"async_echo", "dep_broken", "dep_v1", "dep_v2", "echo", "envdump", "noop", "prints_progress", "raiser", "sleeper",
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

// FreeAddr returns a loopback address whose port was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePortRange(t, 0)
}

// FreePortRange finds a base port such that base+1..base+n are free.
func FreePortRange(t testing.TB, n int) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ok := true
		for i := 1; i <= n; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

// LogBuffer keeps the output of the processes a test starts; it is safe for concurrent writers.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
