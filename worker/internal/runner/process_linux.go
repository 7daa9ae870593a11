//go:build linux

package runner

import (
	"os"
	"syscall"
	"unsafe"
)

const pidSelector = 1 // P_PID

// sysProcAttr puts the child in its own process group and has the kernel kill it if the worker dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
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
