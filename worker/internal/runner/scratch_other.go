//go:build !unix

package runner

import "os"

// lockExclusive is a no-op where flock does not exist: a folder whose lock file exists counts as held.
func lockExclusive(f *os.File, try bool) error {
	if try {
		return os.ErrExist
	}
	return nil
}
