package repository

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// event encodes one struct inotify_event.
func event(wd int32, mask uint32, name string) []byte {
	n := 0
	if name != "" {
		n = (len(name) + 1 + 15) / 16 * 16 // NUL-terminated and padded, as the kernel does
	}
	b := make([]byte, unix.SizeofInotifyEvent+n)
	binary.NativeEndian.PutUint32(b[0:], uint32(wd))
	binary.NativeEndian.PutUint32(b[4:], mask)
	binary.NativeEndian.PutUint32(b[12:], uint32(n))
	copy(b[unix.SizeofInotifyEvent:], name)
	return b
}

func TestChangeWatcherParse(t *testing.T) {
	w := &changeWatcher{fd: -1, dirs: map[string]int{"/r/s": 3, "/r/t": 4}}
	var b []byte
	b = append(b, event(3, unix.IN_MODIFY, "scraper.py")...)                // a change
	b = append(b, event(3, unix.IN_CREATE|unix.IN_ISDIR, "__pycache__")...) // ignored
	b = append(b, event(3, unix.IN_CREATE, ".scraper.py.swp")...)           // ignored
	b = append(b, event(-1, unix.IN_Q_OVERFLOW, "")...)                     // events were lost: a change
	b = append(b, event(4, unix.IN_IGNORED, "")...)                         // /r/t's watch is gone: a change
	w.parse(b)
	if w.changes != 3 {
		t.Errorf("%d changes, want 3", w.changes)
	}
	if _, ok := w.dirs["/r/t"]; ok || len(w.dirs) != 1 {
		t.Errorf("watched folders %v, want /r/t dropped", w.dirs)
	}
	// A record cut short (never from the kernel) ends the parse without a panic.
	w.parse(event(3, unix.IN_MODIFY, "scraper.py")[:unix.SizeofInotifyEvent+3])
	w.parse(make([]byte, 5))
}

// A folder gone between its listing and its watch only keeps that resolution out of the cache; the kernel
// refusing a watch for any other reason gives the watcher up.
func TestChangeWatcherVanishedFolder(t *testing.T) {
	w := newChangeWatcher()
	if w == nil {
		t.Fatal("no inotify on this Linux machine")
	}
	defer w.close()
	dir := t.TempDir()
	if err := w.watch(filepath.Join(dir, "gone")); !errors.Is(err, errVanished) {
		t.Fatalf("watch(a missing folder) = %v, want errVanished", err)
	}
	file := filepath.Join(dir, "file")
	must(t, os.WriteFile(file, nil, 0o644))
	if err := w.watch(filepath.Join(file, "sub")); !errors.Is(err, errVanished) {
		t.Fatalf("watch(a path through a file) = %v, want errVanished", err)
	}
	if err := w.watch(dir); err != nil || len(w.dirs) != 1 {
		t.Fatalf("watch(a folder) = %v, watched: %v", err, w.dirs)
	}
	w.close()
	if err := w.watch(t.TempDir()); err == nil || errors.Is(err, errVanished) {
		t.Fatalf("watch on a closed watcher = %v, want the kernel's refusal", err)
	}
}
