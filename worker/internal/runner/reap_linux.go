//go:build linux

package runner

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Escaped processes, in session mode (doc.go, "Containment"). The worker is a child subreaper, so a process
// whose parent dies is handed to the worker instead of init. Run leaders are the only children the runner
// starts in a session of their own; every other child of the worker whose session differs from the
// worker's was not started by the worker: it is a script's process that left its run (setsid, a double
// fork) and is killed, then reaped. Processes of a finished run's session (setpgid escapees included) are
// killed when the run ends.
//
// The registry is process-wide because the subreaper attribute is: every Runner of the process records its
// leaders in it, in both containment modes, so no sweep ever mistakes another Runner's leader for an orphan.

// sweepInterval is the period of the background sweep.
const sweepInterval = time.Second

var children = &registry{leaders: map[int]struct{}{}, self: os.Getpid()}

type registry struct {
	mu      sync.Mutex
	leaders map[int]struct{} // run leaders not yet reaped by os/exec
	self    int
	selfSid int
	once    sync.Once
	enabled bool // subreaper set and background sweep running
	err     error
}

// startChild starts cmd and records it as a run leader, atomically with respect to sweeps: a leader is a
// child in a session of its own, which a sweep would otherwise take for an escaped process.
func startChild(cmd *exec.Cmd) error {
	children.mu.Lock()
	defer children.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	children.leaders[cmd.Process.Pid] = struct{}{}
	return nil
}

// forgetChild removes a reaped leader from the registry.
func forgetChild(pid int) {
	children.mu.Lock()
	delete(children.leaders, pid)
	children.mu.Unlock()
}

// enableSweeping makes the worker a child subreaper and starts the background sweep, once per process.
func enableSweeping(log *slog.Logger) error {
	children.once.Do(func() {
		st, ok := readStat(children.self)
		if !ok {
			children.err = errStat
			return
		}
		children.selfSid = st.session
		if err := prctl(prSetChildSubreaper, 1); err != nil {
			children.err = err
			return
		}
		children.enabled = true
		go func() {
			for range time.Tick(sweepInterval) {
				if n := sweepOnce(0); n > 0 {
					log.Warn("killed processes that escaped their script's run", "processes", n)
				}
			}
		}()
	})
	return children.err
}

// sweep kills what is left of session sid (0: no session) and every escaped orphan, repeating until a pass
// finds nothing (killing a process hands its own children to the worker) or bound passes. It reports how
// many processes it killed or reaped.
func sweep(sid int, bound time.Duration) int {
	if !children.enabled {
		return 0
	}
	total := 0
	deadline := time.Now().Add(bound)
	for {
		n := sweepOnce(sid)
		total += n
		if n == 0 || time.Now().After(deadline) {
			return total
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// sweepOnce is one pass over /proc.
func sweepOnce(sid int) int {
	children.mu.Lock()
	defer children.mu.Unlock()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	acted := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == children.self {
			continue
		}
		st, ok := readStat(pid)
		if !ok {
			continue
		}
		_, leader := children.leaders[pid]
		switch {
		case st.ppid == children.self && st.session != children.selfSid && !leader:
			// An orphan handed to the worker: our child, so its pid cannot be reused until we reap it.
			if st.dead() {
				var ws syscall.WaitStatus
				if wpid, _ := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); wpid == pid {
					acted++
				}
				continue
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
			acted++
		case sid > 0 && st.session == sid && !st.dead():
			if killIf(pid, func(s pstat) bool { return s.session == sid && !s.dead() }) {
				acted++
			}
		}
	}
	return acted
}

// killIf sends SIGKILL to pid if it still matches once a pidfd pins it, so a recycled pid is never hit.
func killIf(pid int, match func(pstat) bool) bool {
	p, err := os.FindProcess(pid) // a pidfd on Linux 5.3+
	if err != nil {
		return false
	}
	defer p.Release()
	st, ok := readStat(pid)
	if !ok || !match(st) {
		return false
	}
	return p.Signal(syscall.SIGKILL) == nil
}

// pstat is what the runner reads from /proc/<pid>/stat.
type pstat struct {
	state               byte
	ppid, pgrp, session int
	envStart, envEnd    uint64 // fields 50 and 51, readable for the process itself
	hasEnv              bool
}

func (s pstat) dead() bool { return s.state == 'Z' || s.state == 'X' }

var errStat = &os.PathError{Op: "read", Path: "/proc/self/stat", Err: syscall.EINVAL}

func readStat(pid int) (pstat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return pstat{}, false
	}
	// pid (comm) state ppid pgrp session ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return pstat{}, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 4 {
		return pstat{}, false
	}
	st := pstat{state: f[0][0]}
	var e1, e2, e3 error
	st.ppid, e1 = strconv.Atoi(string(f[1]))
	st.pgrp, e2 = strconv.Atoi(string(f[2]))
	st.session, e3 = strconv.Atoi(string(f[3]))
	if e1 != nil || e2 != nil || e3 != nil {
		return pstat{}, false
	}
	// Field k of proc(5) is f[k-3]: env_start is field 50, env_end field 51.
	if len(f) > 48 {
		s, err1 := strconv.ParseUint(string(f[47]), 10, 64)
		e, err2 := strconv.ParseUint(string(f[48]), 10, 64)
		st.envStart, st.envEnd, st.hasEnv = s, e, err1 == nil && err2 == nil && e > s
	}
	return st, true
}

// Task counting for RLIMIT_NPROC, which the kernel checks against every task (process or thread) of the
// child's real user. The count is cached briefly: it only sets a ceiling.
var taskCount struct {
	mu    sync.Mutex
	uid   int
	n     int
	taken time.Time
}

// tasksOf returns how many tasks user uid runs now (cached for half a second).
func tasksOf(uid int) int {
	taskCount.mu.Lock()
	defer taskCount.mu.Unlock()
	if taskCount.uid == uid && time.Since(taskCount.taken) < 500*time.Millisecond {
		return taskCount.n
	}
	n := countTasks(uid)
	taskCount.uid, taskCount.n, taskCount.taken = uid, n, time.Now()
	return n
}

// countTasks counts the tasks (processes and threads) whose real user is uid, reading /proc now.
func countTasks(uid int) int {
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		var owner, threads int = -1, 0
		for _, line := range bytes.Split(b, []byte("\n")) {
			switch {
			case bytes.HasPrefix(line, []byte("Uid:")):
				if f := bytes.Fields(line[4:]); len(f) > 0 {
					owner, _ = strconv.Atoi(string(f[0]))
				}
			case bytes.HasPrefix(line, []byte("Threads:")):
				threads, _ = strconv.Atoi(string(bytes.TrimSpace(line[8:])))
			}
		}
		if owner == uid {
			n += max(threads, 1)
		}
	}
	return n
}

// userIdle reports whether no process of user uid exists now (not cached).
func userIdle(uid int) bool { return countTasks(uid) == 0 }

const (
	prSetDumpable       = 4
	prSetChildSubreaper = 36
)

func prctl(option, arg uintptr) error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, option, arg, 0); errno != 0 {
		return errno
	}
	return nil
}

// nprocPerUserNamespace reports whether the kernel counts RLIMIT_NPROC per user namespace (Linux 5.14,
// "Reimplement RLIMIT_NPROC on top of ucounts"): a process in a user namespace then meets the limit when
// its user has that many processes in that namespace. Older kernels count every process of the uid.
func nprocPerUserNamespace() bool {
	var u syscall.Utsname
	if syscall.Uname(&u) != nil {
		return false
	}
	var b []byte
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	var major, minor int
	if _, err := fmt.Sscanf(string(b), "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > 5 || major == 5 && minor >= 14
}
