//go:build unix && !linux

package runner

import "errors"

// ProtectProcess is Linux-only: elsewhere it reports that nothing was done.
func ProtectProcess() error {
	return errors.New("protecting the worker's environment from scripts needs Linux")
}
