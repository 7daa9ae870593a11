//go:build !linux

package runner

import (
	"errors"
	"net"
	"os/exec"
	"syscall"
)

type jail struct{}

func (r *Runner) newJail(*exec.Cmd, Job, string) (*jail, error) {
	return nil, errors.New("namespaces need Linux")
}

func (j *jail) start(func(net.Listener)) error { return errors.New("namespaces need Linux") }

func (j *jail) close() {}

type jailSpec struct {
	SetID    bool
	UID, GID uint32
	Port     int
	Tmp, Shm int64
}

func prepareJail(*exec.Cmd, jailSpec) (*jail, error) { return nil, errors.New("namespaces need Linux") }

func jailAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
