//go:build unix

package repository

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive lock on dir, so two worker processes never share (and clean up under each
// other) one script cache. The lock ends with the process.
func lockDir(dir string) (io.Closer, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errors.New("in use by another worker process; give each worker its own SCRIPT_CACHE_DIR")
		}
		return nil, fmt.Errorf("lock: %w", err)
	}
	return f, nil
}
