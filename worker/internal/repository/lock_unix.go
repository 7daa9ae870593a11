//go:build unix

package repository

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockDir takes an exclusive lock on dir, so two worker processes never share (and clean up under each
// other) one script cache. The lock ends with the process.
//
// A lock that is taken is retried for up to wait: a worker restarted by its supervisor may start while the
// previous process is still exiting, and a lock released by Close stays held for a moment by a child that
// another goroutine of the process forked (the lock belongs to the open file, which the child shares until
// its exec closes it).
func lockDir(dir string, wait time.Duration) (io.Closer, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock: %w", err)
		}
		if !time.Now().Before(deadline) {
			f.Close()
			return nil, errors.New("in use by another worker process; give each worker its own SCRIPT_CACHE_DIR")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
