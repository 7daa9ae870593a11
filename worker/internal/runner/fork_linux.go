//go:build linux

package runner

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// forkSupported: templates need SO_PASSCRED and pidfds (Linux 5.3).
const forkSupported = true

// controlPair makes a template's control socket: the worker's end, which receives its peers' credentials,
// and the template's.
func controlPair() (worker, template *os.File, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := syscall.SetsockoptInt(fds[0], syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1); err != nil {
		_ = syscall.Close(fds[0])
		_ = syscall.Close(fds[1])
		return nil, nil, err
	}
	return os.NewFile(uintptr(fds[0]), "template-control"), os.NewFile(uintptr(fds[1]), "template-control-child"), nil
}

// probeFork checks what templates need: a control socket that receives its peers' credentials, and pidfds.
func probeFork() error {
	w, t, err := controlPair()
	if err != nil {
		return err
	}
	closeAll(w, t)
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return fmt.Errorf("pidfd_open: %w", err)
	}
	return syscall.Close(fd)
}

// senderPid is the pid the kernel attached to a message (SCM_CREDENTIALS, in the worker's PID namespace).
// Descriptors a message carries (none should) are closed.
func senderPid(oob []byte) (int, bool) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	pid, ok := 0, false
	for i := range msgs {
		switch {
		case msgs[i].Header.Level != syscall.SOL_SOCKET:
		case msgs[i].Header.Type == syscall.SCM_CREDENTIALS:
			if c, err := syscall.ParseUnixCredentials(&msgs[i]); err == nil && c.Pid > 0 {
				pid, ok = int(c.Pid), true
			}
		case msgs[i].Header.Type == syscall.SCM_RIGHTS:
			if fds, err := syscall.ParseUnixRights(&msgs[i]); err == nil {
				for _, fd := range fds {
					_ = syscall.Close(fd)
				}
			}
		}
	}
	return pid, ok
}

// firstChild returns the first child of pid (runner.py's init's: the interpreter that serves).
func firstChild(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + strconv.Itoa(pid) + "/children")
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, false
	}
	child, err := strconv.Atoi(f[0])
	return child, err == nil
}

// pinChild opens a pidfd on pid and checks, once it is pinned, that pid is a live child of parent leading a
// session of its own. It returns the pidfd and pid's number in its own PID namespace.
func pinChild(pid, parent int) (pidfd, nspid int, err error) {
	pidfd, err = unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("pin the forked runner %d: %w", pid, err)
	}
	st, ok := readStat(pid)
	if !ok || st.dead() || st.ppid != parent || st.session != pid {
		_ = syscall.Close(pidfd)
		return -1, 0, fmt.Errorf("process %d is not a runner the template forked (parent %d, session %d)", pid, st.ppid, st.session)
	}
	nspid, err = innermostPid(pid)
	if err != nil {
		_ = syscall.Close(pidfd)
		return -1, 0, err
	}
	return pidfd, nspid, nil
}

// innermostPid is pid's number in its own PID namespace (the last field of NSpid in /proc/<pid>/status).
func innermostPid(pid int) (int, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := bytes.CutPrefix(s.Bytes(), []byte("NSpid:")); ok {
			fields := bytes.Fields(rest)
			if len(fields) == 0 {
				break
			}
			return strconv.Atoi(string(fields[len(fields)-1]))
		}
	}
	return 0, errors.New("no NSpid in /proc/" + strconv.Itoa(pid) + "/status")
}

// waitPidfd blocks until the process of pidfd has exited.
func waitPidfd(pidfd int) {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != unix.EINTR {
			return
		}
	}
}

// registerChild records a forked runner as a run leader: in session mode, a runner whose template died is
// handed to the worker (a subreaper), and the sweep must not take it for an escaped process.
func registerChild(pid int) {
	children.mu.Lock()
	children.leaders[pid] = struct{}{}
	children.mu.Unlock()
}

// killSession kills every process of session sid, repeating while it finds some (at most a few passes).
func killSession(sid int) int {
	return killMatching(func(s pstat) bool { return s.session == sid && !s.dead() })
}

// killAdopted kills the children of init (a PID namespace's, in the worker's numbering) but keep: the
// processes that left a forked runner's session, which the namespace's init adopted.
func killAdopted(init, keep int) int {
	return killMatching(func(s pstat) bool { return s.ppid == init && !s.dead() }, keep)
}

// killMatching kills the processes that match, but not those in except, in up to ten passes over /proc
// (killing one hands its children on), and reports how many it killed.
func killMatching(match func(pstat) bool, except ...int) int {
	killed := map[int]bool{}
	for range 10 {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			break
		}
		found := false
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == children.self || killed[pid] || slices.Contains(except, pid) {
				continue
			}
			if st, ok := readStat(pid); ok && match(st) && killIf(pid, match) {
				killed[pid], found = true, true
			}
		}
		if !found {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	return len(killed)
}
