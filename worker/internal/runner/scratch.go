package runner

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/scrapeplatform/platform/worker/internal/privatedir"
)

// scratchPrefix starts the name of each worker process's scratch folder inside WorkDir:
// scratch-<pid>-<random>. WorkDir may be shared (two stacks with one WORKER_ID, two workers with one
// WORKER_WORK_DIR); the scratch folder never is.
const scratchPrefix = "scratch-"

// lockName is the file in a scratch folder that its process holds locked (flock) while it lives; a folder
// whose lock can be taken belongs to a process that is gone. Shutdown renames it closingName (the lock
// stays held) when runs still use the folder: the last of them to remove its run folder removes the
// scratch folder.
const (
	lockName    = ".lock"
	closingName = ".closing"
)

// scratch is one Runner's scratch folder: the parent of its run folders, private to the worker (0700, or
// 0711 when scripts run as another user, who must reach their run folders), locked while the Runner lives,
// removed by Shutdown, and swept by the next Runner on this WorkDir if its process died first.
type scratch struct {
	dir  string
	mode fs.FileMode

	mu     sync.Mutex
	lock   *os.File // nil once released
	closed bool
}

// newScratch makes workDir private (owned by the worker, not writable by others: an existing folder that
// is not is refused), removes the scratch folders of processes that are gone, and creates this process's.
func newScratch(workDir string, mode fs.FileMode, log *slog.Logger) (*scratch, error) {
	if err := privatedir.Ensure(workDir, mode); err != nil {
		return nil, fmt.Errorf("runner: work dir: %w", err)
	}
	sweepScratch(workDir, log)
	dir, err := os.MkdirTemp(workDir, scratchPrefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return nil, fmt.Errorf("runner: scratch folder: %w", err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("runner: scratch folder: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o600)
	if err == nil {
		err = lockExclusive(lock, false)
	}
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("runner: lock the scratch folder: %w", err)
	}
	return &scratch{dir: dir, mode: mode, lock: lock}, nil
}

// sweepScratch removes the scratch folders in workDir whose process is gone (their lock is free).
func sweepScratch(workDir string, log *slog.Logger) {
	entries, err := os.ReadDir(workDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), scratchPrefix) {
			continue
		}
		dir := filepath.Join(workDir, e.Name())
		if ownerAlive(e.Name()) || lockHeld(dir) {
			// Its process lives. The pid in the name covers the moment between a starting process's
			// MkdirTemp and its lock, when the folder has no lock file or an unlocked one.
			continue
		}
		removeTree(dir)
		if _, err := os.Lstat(dir); err == nil {
			log.Warn("cannot remove the scratch folder of a worker process that is gone", "dir", dir)
		} else {
			log.Info("removed the scratch folder of a worker process that is gone", "dir", dir)
		}
	}
}

// ownerAlive reports whether the process named by a scratch folder's name (scratch-<pid>-<random>) still
// runs. A pid that another process took over since keeps the folder until that process ends too.
func ownerAlive(name string) bool {
	pidText, _, ok := strings.Cut(strings.TrimPrefix(name, scratchPrefix), "-")
	pid, err := strconv.Atoi(pidText)
	if !ok || err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// lockHeld reports whether a live process holds the lock of the scratch folder dir. A folder without a
// lock file is one whose process died between creating it and its lock, or that is half removed.
func lockHeld(dir string) bool {
	for _, name := range []string{lockName, closingName} {
		path := filepath.Join(dir, name)
		if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			return true // not ours to judge
		}
		held := lockExclusive(f, true) != nil
		_ = f.Close()
		return held
	}
	return false
}

// newDir creates a run folder inside the scratch folder.
func (s *scratch) newDir(prefix string) (string, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return "", errors.New("the runner has been shut down")
	}
	return os.MkdirTemp(s.dir, prefix)
}

// remove deletes the scratch folder, or, when runs still use it, leaves that to the last of them
// (releaseRunDir). Runs starting afterwards fail: call it once running work has drained.
func (s *scratch) remove(log *slog.Logger) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if err := os.Rename(filepath.Join(s.dir, lockName), filepath.Join(s.dir, closingName)); err != nil {
		log.Warn("cannot mark the runner's scratch folder for removal", "dir", s.dir, "error", err)
		return
	}
	if !removeClosing(s.dir) {
		log.Debug("runs still use the scratch folder; the last one removes it", "dir", s.dir)
	}
	// The lock stays held until the process exits, so no other process sweeps a folder still in use.
}

// releaseRunDir removes a run folder, and its scratch folder when Shutdown asked for that and this was
// the last run in it.
func releaseRunDir(dir string) {
	removeTree(dir)
	if parent := filepath.Dir(dir); strings.HasPrefix(filepath.Base(parent), scratchPrefix) {
		removeClosing(parent)
	}
}

// removeClosing removes the scratch folder dir when it is marked for removal and holds no run folder;
// it reports whether dir is gone.
func removeClosing(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	closing := false
	for _, e := range entries {
		if e.Name() != closingName {
			return false
		}
		closing = true
	}
	if !closing {
		return false
	}
	return os.RemoveAll(dir) == nil
}

// removeTree removes dir, making read-only folders a script left writable first.
func removeTree(dir string) {
	if err := os.RemoveAll(dir); err == nil {
		return
	}
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(path, 0o700)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}
