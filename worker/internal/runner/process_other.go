//go:build unix && !linux

package runner

import (
	"errors"
	"os"
	"syscall"
)

// sysProcAttr starts the child as the leader of its own session. PID namespaces and PR_SET_PDEATHSIG are
// Linux-only.
func sysProcAttr(_ containment, cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true, Credential: cred}
}

func probeAttr(pidns bool, cred *syscall.Credential) (*syscall.SysProcAttr, error) {
	if pidns {
		return nil, errNoPIDNamespace
	}
	return &syscall.SysProcAttr{Credential: cred}, nil
}

// waitExited is not implemented outside Linux: the group is killed after the child is reaped, which leaves
// a tiny window in which its pgid could have been recycled.
func waitExited(int) bool { return false }

func pending(...*os.File) int { return 0 }

// errNoPIDNamespace is what probe reports where PID namespaces do not exist.
var errNoPIDNamespace = errors.New("PID namespaces exist on Linux only")

// rssReader does not read outside Linux: runners are recycled by MaxRequests only.
type rssReader struct{}

func (*rssReader) read(int, bool) (int64, bool) { return 0, false }
func (*rssReader) close()                       {}

func privateBytes(int) (int64, bool) { return 0, false }
