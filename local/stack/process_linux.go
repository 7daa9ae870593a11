package stack

import "syscall"

// newSysProcAttr puts the child in its own process group and, should this
// supervisor die without stopping it (kill -9, a crash), has the kernel send
// the child SIGTERM so it shuts down instead of running on unsupervised.
func newSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
