//go:build linux

package runner

import (
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
