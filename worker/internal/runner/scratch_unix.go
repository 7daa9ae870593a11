//go:build unix

package runner

import (
	"os"
	"syscall"
)

// lockExclusive takes f's flock; with try it fails at once when another process holds it.
func lockExclusive(f *os.File, try bool) error {
	how := syscall.LOCK_EX
	if try {
		how |= syscall.LOCK_NB
	}
	return syscall.Flock(int(f.Fd()), how)
}
