package runner

import (
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
)

// sharedTempDirs are the machine's shared temporary folders, where a script can leave files beyond its run
// folder (TMPDIR): another script could read them, and in /dev/shm (tmpfs) they hold memory that
// RLIMIT_AS does not count.
var sharedTempDirs = []string{"/tmp", "/var/tmp", "/dev/shm"}

// runStarted and runEnded count the runs (cold runs and warm runners) whose processes may be alive;
// leftovers are removed only when none is.
func (r *Runner) runStarted(uid int) {
	r.tempMu.Lock()
	if r.active == nil {
		r.active = map[int]int{}
	}
	r.active[uid]++
	r.tempMu.Unlock()
}

// runEnded is called once a run's processes are gone (after the sweep); uid is its script's user (-1: the
// worker's). When scripts run as their own user (RunAs, UIDRange), no other run of this Runner as that user
// is alive and no process of that user exists anywhere on the machine (another worker, another stack), it
// removes what that user left at the top of /tmp, /var/tmp and /dev/shm. Without a mount namespace that is
// the only bound on those files: until the end of the run a script can fill /dev/shm up to MaxFileBytes
// per file. With one (ContainNamespaces) the run's own tmpfs went with it, and the host's folders were
// never the run's to write.
func (r *Runner) runEnded(log *slog.Logger, uid int) {
	r.tempMu.Lock()
	defer r.tempMu.Unlock()
	r.active[uid]--
	if r.active[uid] <= 0 {
		delete(r.active, uid)
	}
	if uid < 0 || r.active[uid] > 0 || r.contain.jail {
		return
	}
	if !userIdle(uid) {
		log.Debug("another process of the scripts' user runs; its temporary files stay for now", "uid", uid)
		return
	}
	for _, dir := range r.tempDirs {
		if n := removeOwnedBy(dir, uid); n > 0 {
			log.Info("removed what scripts left in a shared temporary folder", "dir", dir, "entries", n)
		}
	}
}

// removeOwnedBy removes the entries at the top of dir that belong to uid (with everything below them;
// os.RemoveAll does not follow links) and returns how many it removed.
func removeOwnedBy(dir string, uid int) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(path)
		if err != nil || !ownedBy(fi, uid) {
			continue
		}
		removeTree(path)
		n++
	}
	return n
}

func ownedBy(fi fs.FileInfo, uid int) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == uid
}
