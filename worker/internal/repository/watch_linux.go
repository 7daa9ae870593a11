//go:build linux

package repository

import (
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"
)

// changeWatcher counts the changes made under the folders it watches, with inotify. A resolution taken
// while the count was c is still true while the count is c: Local then skips its walk of the script
// folder. The kernel queues an event before the write that caused it returns, and count reads the queue
// at once, so an edit shows on the very next Resolve.
type changeWatcher struct {
	fd      int
	changes uint64
	dirs    map[string]int // watched folder -> watch descriptor
	buf     []byte
}

// watchMask is every change to a folder's entries or to the files in it; reads are left out.
const watchMask = unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CLOSE_WRITE | unix.IN_CREATE | unix.IN_DELETE |
	unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_MOVED_FROM | unix.IN_MOVED_TO

// newChangeWatcher returns a watcher, or nil where inotify is unavailable (Local then walks every time).
func newChangeWatcher() *changeWatcher {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil
	}
	return &changeWatcher{fd: fd, dirs: map[string]int{}, buf: make([]byte, 64<<10)}
}

// watch adds dir. errVanished: dir is gone (or no longer a folder) since it was listed; any other error is
// the kernel refusing (e.g. the user's max_user_watches is reached).
func (w *changeWatcher) watch(dir string) error {
	if _, ok := w.dirs[dir]; ok {
		return nil
	}
	wd, err := unix.InotifyAddWatch(w.fd, dir, watchMask)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return errVanished
	}
	if err != nil {
		return err
	}
	w.dirs[dir] = wd
	return nil
}

// count reads the queued events and returns how many changes were seen so far; false when the queue
// cannot be read (the watcher is then of no use).
func (w *changeWatcher) count() (uint64, bool) {
	for {
		n, err := unix.Read(w.fd, w.buf)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return w.changes, true
		case err != nil || n <= 0:
			return 0, false
		}
		w.parse(w.buf[:n])
	}
}

// parse counts the events in b (struct inotify_event records). Events about ignored entries (editors'
// hidden files, bytecode caches) are not changes to a script.
func (w *changeWatcher) parse(b []byte) {
	for len(b) >= unix.SizeofInotifyEvent {
		wd := int(int32(binary.NativeEndian.Uint32(b[0:])))
		mask := binary.NativeEndian.Uint32(b[4:])
		size := unix.SizeofInotifyEvent + int(binary.NativeEndian.Uint32(b[12:]))
		if size > len(b) {
			size = len(b)
		}
		name := b[unix.SizeofInotifyEvent:size]
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		b = b[size:]
		if mask&unix.IN_IGNORED != 0 { // the folder is gone (or unmounted): watch it again when it is back
			for dir, d := range w.dirs {
				if d == wd {
					delete(w.dirs, dir)
				}
			}
		} else if len(name) > 0 && Ignored(string(name)) {
			continue
		}
		w.changes++
	}
}

// close releases the inotify descriptor, once.
func (w *changeWatcher) close() {
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
}
