//go:build !linux

package stack

import "syscall"

// newSysProcAttr puts the child in its own process group. (Only Linux can
// also tie the child's life to this supervisor's.)
func newSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
