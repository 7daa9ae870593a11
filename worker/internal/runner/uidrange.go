package runner

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"syscall"
)

// UIDRange is a range of user ids, each script running as one of its own (Config.UIDRange,
// SCRIPT_UID_RANGE): runs of different scripts then cannot signal, trace or read each other's processes
// and files even without namespaces. The uid of a script is picked from its name by a hash, so it is the
// same on every worker and across restarts; two scripts may share one (with 65,536 uids, about 1.5 % odds
// that any two of 50 scripts do), which gives those two what one script's runs share anyway. Its group id
// is the same number; scripts get no supplementary groups.
type UIDRange struct {
	First uint32 // the range's first uid
	Count uint32 // how many uids; First+Count-1 is the last
}

// uidFor is the uid and gid a script runs as.
func (u UIDRange) uidFor(script string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(script))
	return u.First + h.Sum32()%u.Count
}

// String is the range as SCRIPT_UID_RANGE spells it.
func (u UIDRange) String() string {
	return fmt.Sprintf("%d-%d", u.First, u.First+u.Count-1)
}

// parseUIDRange parses SCRIPT_UID_RANGE: "first-last", numeric, first > 0, at most 2^24 uids, last below
// 2^32-1 (the kernel's "no uid").
func parseUIDRange(v string) (UIDRange, error) {
	a, b, ok := strings.Cut(strings.TrimSpace(v), "-")
	first, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 32)
	last, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 32)
	switch {
	case !ok || err1 != nil || err2 != nil:
		return UIDRange{}, fmt.Errorf("SCRIPT_UID_RANGE must be first-last, numeric (e.g. 200000-265535), got %q", v)
	case first == 0:
		return UIDRange{}, fmt.Errorf("SCRIPT_UID_RANGE must not include root (uid 0), got %q", v)
	case last < first || last >= 1<<32-1 || last-first >= 1<<24:
		return UIDRange{}, fmt.Errorf("SCRIPT_UID_RANGE must be first-last with first <= last < 4294967295 and at most 16777216 uids, got %q", v)
	}
	return UIDRange{First: uint32(first), Count: uint32(last - first + 1)}, nil
}

// credFor is the user a job's script runs as: its own uid of Config.UIDRange, else Config.RunAs, else nil
// (the worker's own user).
func (r *Runner) credFor(job Job) *syscall.Credential {
	switch {
	case r.cfg.UIDRange != nil:
		id := r.cfg.UIDRange.uidFor(job.ScriptName)
		return &syscall.Credential{Uid: id, Gid: id, Groups: []uint32{}}
	case r.cfg.RunAs != nil:
		return &syscall.Credential{Uid: r.cfg.RunAs.UID, Gid: r.cfg.RunAs.GID, Groups: []uint32{}}
	}
	return nil
}

// uidOf is the uid a job's script runs as, or -1 for the worker's own.
func (r *Runner) uidOf(job Job) int {
	if c := r.credFor(job); c != nil {
		return int(c.Uid)
	}
	return -1
}
