//go:build !linux

package protect

import "errors"

// Process is Linux-only: elsewhere it reports that nothing was done.
func Process() error {
	return errors.New("protecting the process's environment from other processes needs Linux")
}

// Dumpable is Linux-only: elsewhere it reports an error.
func Dumpable() (bool, error) { return false, errors.New("dumpable state needs Linux") }
