package privatedir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrNotPrivate is wrapped by every refusal of Ensure, Check and CheckTree.
var ErrNotPrivate = errors.New("not private to the worker")

// Ensure makes dir a private folder with the given mode: it creates it (and missing parents, 0755) when it
// does not exist, and otherwise checks it with Check before setting mode. mode must not grant group or
// others write access.
func Ensure(dir string, mode fs.FileMode) error {
	if mode&0o022 != 0 {
		return fmt.Errorf("folder %s: mode %04o would let others write to it", dir, mode)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(dir, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := Check(dir); err != nil {
		return err
	}
	return os.Chmod(dir, mode) // whatever the umask, and closing a folder someone left open
}

// Check reports whether path (not followed when it is a link) is a folder owned by the worker's effective
// user that group and others cannot write to.
func Check(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is a %s, not a folder: %w", path, kind(fi), ErrNotPrivate)
	}
	return checkEntry(path, fi)
}

// CheckTree checks every entry below root and root itself: each is owned by the worker's effective user and
// none but symbolic links (whose own mode means nothing) is writable by group or others. The links are
// not followed; what they point at is the caller's to check.
func CheckTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		return checkEntry(p, fi)
	})
}

// CheckExecutable reports whether the file path resolves to (following links) may be trusted to run: a
// regular file owned by root or by the worker's effective user and not writable by group or others.
func CheckExecutable(path string) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	fi, err := os.Stat(real)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s (%s) is a %s, not a program: %w", path, real, kind(fi), ErrNotPrivate)
	}
	uid, ok := owner(fi)
	if ok && uid != 0 && uid != os.Geteuid() {
		return fmt.Errorf("%s (%s) belongs to uid %d, neither root nor the worker (uid %d): %w", path, real, uid, os.Geteuid(), ErrNotPrivate)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s (%s) is writable by others (mode %04o): %w", path, real, fi.Mode().Perm(), ErrNotPrivate)
	}
	return nil
}

func checkEntry(path string, fi fs.FileInfo) error {
	if uid, ok := owner(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("%s belongs to uid %d, not to the worker (uid %d); remove it or choose another folder: %w",
			path, uid, os.Geteuid(), ErrNotPrivate)
	}
	if fi.Mode()&fs.ModeSymlink == 0 && fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is writable by group or others (mode %04o); remove it or choose another folder: %w",
			path, fi.Mode().Perm(), ErrNotPrivate)
	}
	return nil
}

func kind(fi fs.FileInfo) string {
	switch m := fi.Mode(); {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m.IsDir():
		return "folder"
	case m.IsRegular():
		return "file"
	}
	return "special file"
}
