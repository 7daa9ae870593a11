//go:build linux

package runner

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

const (
	pidSelector = 1 // P_PID
	cloneNewPID = syscall.CLONE_NEWPID
)

// sysProcAttr starts the child as the leader of its own session (so its process group and session ids are
// its pid), has the kernel kill it if the worker dies, and applies the containment New chose: a PID
// namespace of its own, another user (cred). Under ContainNamespaces and ContainUserns the helper's
// attributes apply (jailAttr): it drops to cred, or its capabilities, itself.
func sysProcAttr(c containment, cred *syscall.Credential) *syscall.SysProcAttr {
	if c.jail {
		return jailAttr(c.userns)
	}
	a := &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
	if c.pidns {
		a.Cloneflags = cloneNewPID
	}
	return a
}

// probeAttr are the attributes New's probe starts the interpreter with.
func probeAttr(pidns bool, cred *syscall.Credential) (*syscall.SysProcAttr, error) {
	a := &syscall.SysProcAttr{Credential: cred}
	if pidns {
		a.Cloneflags = cloneNewPID
	}
	return a, nil
}

// waitExited blocks until the child pid has exited, without reaping it: until cmd.Wait reaps it, the
// zombie keeps its pid, and so its process group id, from being reused. It reports false if it could not
// wait (then cmd.Wait must be relied on alone).
func waitExited(pid int) bool {
	var info [128]byte // siginfo_t; its content is not needed
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pidSelector, uintptr(pid),
			uintptr(unsafe.Pointer(&info[0])), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		switch errno {
		case 0:
			return true
		case syscall.EINTR:
			continue
		default:
			return false
		}
	}
}

// pending reports how many bytes wait unread in the given pipes (FIONREAD).
func pending(files ...*os.File) int {
	total := 0
	for _, f := range files {
		rc, err := f.SyscallConn() // unlike Fd, keeps the file non-blocking, so its deadlines still work
		if err != nil {
			continue
		}
		_ = rc.Control(func(fd uintptr) {
			var n int32
			if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TIOCINQ, uintptr(unsafe.Pointer(&n))); errno == 0 {
				total += int(n)
			}
		})
	}
	return total
}

// rssReader reads the resident memory of the interpreter that serves a warm runner's calls: the runner's
// process itself, or, when it is the init of a PID namespace of its own (pidns: runner.py's become_init),
// its first child, which serves. The process's statm is opened once and re-read in place (one pread a call:
// a few microseconds, where opening it each time cost tens).
type rssReader struct {
	mu     sync.Mutex
	f      *os.File
	closed bool
	buf    [128]byte
}

// read returns the resident bytes; ok is false once the process is gone (or /proc cannot tell).
func (r *rssReader) read(pid int, pidns bool) (rss int64, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return 0, false
	}
	if r.f == nil {
		if pidns {
			child, ok := firstChild(pid)
			if !ok {
				return 0, false // not forked yet: ask again after the next call
			}
			pid = child
		}
		f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/statm")
		if err != nil {
			return 0, false
		}
		r.f = f
	}
	n, err := syscall.Pread(int(r.f.Fd()), r.buf[:], 0)
	if err != nil || n <= 0 {
		return 0, false
	}
	f := strings.Fields(string(r.buf[:n]))
	if len(f) < 2 {
		return 0, false
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, false
	}
	return pages * int64(os.Getpagesize()), true
}

// close lets the process's statm go; read answers false from then on.
func (r *rssReader) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f != nil {
		_ = r.f.Close()
		r.f = nil
	}
	r.closed = true
}

// privateBytes returns the private memory of process pid (Private_Clean + Private_Dirty of its
// smaps_rollup): the pages no other process maps, which for a runner forked from a template is what it
// added to the template's. ok is false when /proc cannot tell (the process is gone, or not the worker's to
// read).
func privateBytes(pid int) (n int64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0, false
	}
	found := 0
	for line := range strings.Lines(string(b)) {
		name, rest, _ := strings.Cut(line, ":")
		if name != "Private_Clean" && name != "Private_Dirty" {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, false
		}
		n += kb << 10
		found++
	}
	return n, found == 2
}
