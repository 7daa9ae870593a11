//go:build !linux

package repository

import "errors"

// changeWatcher is Linux's inotify; elsewhere Local walks the script folder on every Resolve.
type changeWatcher struct{}

func newChangeWatcher() *changeWatcher         { return nil }
func (w *changeWatcher) watch(string) error    { return errors.ErrUnsupported }
func (w *changeWatcher) count() (uint64, bool) { return 0, false }
func (w *changeWatcher) close()                {}
