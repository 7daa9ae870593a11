//go:build unix && !linux

package runner

import (
	"os"
	"syscall"
)

// sysProcAttr puts the child in its own process group. PR_SET_PDEATHSIG is Linux-only.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// waitExited is not implemented outside Linux: the group is killed after the child is reaped, which leaves
// a tiny window in which its pgid could have been recycled.
func waitExited(int) bool { return false }

func pending(...*os.File) int { return 0 }
