package privatedir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnsure(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	fresh := filepath.Join(base, "a", "b", "fresh")
	if err := Ensure(fresh, 0o711); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(fresh); err != nil || fi.Mode().Perm() != 0o711 {
		t.Fatalf("created %v (%v), want 0711", fi.Mode().Perm(), err)
	}
	if err := Ensure(fresh, 0o700); err != nil { // an existing one of the worker's: its mode is set
		t.Fatal(err)
	}
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o700 {
		t.Fatalf("mode %v, want 0700", fi.Mode().Perm())
	}
	if err := Ensure(filepath.Join(base, "x"), 0o775); err == nil {
		t.Error("Ensure accepted a group-writable mode")
	}

	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(fresh, link); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{open: "writable by group or others", link: "symbolic link", file: "is a file"}
	if os.Geteuid() == 0 {
		foreign := filepath.Join(base, "foreign")
		if err := os.Mkdir(foreign, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(foreign, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		cases[foreign] = "belongs to uid 65534"
	}
	for dir, why := range cases {
		err := Ensure(dir, 0o700)
		if !errors.Is(err, ErrNotPrivate) || !strings.Contains(err.Error(), why) {
			t.Errorf("Ensure(%s) = %v; want a refusal saying %q", dir, err, why)
		}
	}
	if fi, _ := os.Stat(open); fi.Mode().Perm() != 0o777 {
		t.Error("a refused folder's mode was changed")
	}
}

func TestCheckTreeAndExecutable(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	bin := filepath.Join(root, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(bin, "prog")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(prog, filepath.Join(bin, "alias")); err != nil { // a link's own mode is 0777: fine
		t.Fatal(err)
	}
	if err := CheckTree(root); err != nil {
		t.Fatalf("a clean tree: %v", err)
	}
	if err := CheckExecutable(filepath.Join(bin, "alias")); err != nil {
		t.Fatalf("a clean program through a link: %v", err)
	}
	if err := os.Chmod(prog, 0o757); err != nil {
		t.Fatal(err)
	}
	if err := CheckTree(root); !errors.Is(err, ErrNotPrivate) {
		t.Errorf("CheckTree with a world-writable file = %v", err)
	}
	if err := CheckExecutable(filepath.Join(bin, "alias")); !errors.Is(err, ErrNotPrivate) {
		t.Errorf("CheckExecutable of a world-writable program = %v", err)
	}
	if err := CheckExecutable(bin); !errors.Is(err, ErrNotPrivate) {
		t.Errorf("CheckExecutable of a folder = %v", err)
	}
}
