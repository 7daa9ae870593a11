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
	Userns   bool
	Hide     []string
	Keep     []jailKeep
}

type jailKeep struct {
	Path string
	RW   bool
}

func prepareJail(*exec.Cmd, jailSpec) (*jail, error) { return nil, errors.New("namespaces need Linux") }

func jailAttr(bool) *syscall.SysProcAttr { return &syscall.SysProcAttr{} }

func jailKeeps([]string, string, string, ...string) []jailKeep { return nil }

func interpreterRoots(string) []string { return nil }

func hiddenPaths(string, string, []string) []string { return nil }
