package runner

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Containment modes (Config.Containment); doc.go explains what each guarantees.
const (
	// ContainAuto uses a PID namespace when the worker may create one, else a session.
	ContainAuto = "auto"
	// ContainPIDNamespace requires a PID namespace per run (root or CAP_SYS_ADMIN); New fails without.
	ContainPIDNamespace = "pidns"
	// ContainSession runs each child in its own session and sweeps escaped processes (no privileges needed).
	ContainSession = "session"
)

// DefaultMaxProcesses is the default Config.MaxProcesses: how many processes and threads a script may
// start beyond those its user already runs.
const DefaultMaxProcesses = 1024

// sweepBound bounds the sweeping at the end of one run (session mode); the background sweep catches
// anything later.
const sweepBound = time.Second

// Credential is a user and group to run scripts as.
type Credential struct {
	UID, GID uint32
}

// containment is what New decided about how children are started and ended.
type containment struct {
	pidns bool                // each run is PID 1 (plus runner.py's init fork) of its own PID namespace
	cred  *syscall.Credential // nil: the worker's own user
	// nprocUID is the user whose tasks RLIMIT_NPROC counts, or -1 when the limit cannot be enforced (root,
	// which the kernel exempts, or MaxProcesses < 0).
	nprocUID int
}

// chooseContainment settles the containment mode, probing the kernel with python (which must exist).
func chooseContainment(cfg Config, python string) (containment, error) {
	c := containment{nprocUID: -1}
	if cfg.RunAs != nil {
		c.cred = &syscall.Credential{Uid: cfg.RunAs.UID, Gid: cfg.RunAs.GID, Groups: []uint32{}}
	}
	switch cfg.Containment {
	case ContainAuto, ContainPIDNamespace:
		err := probe(python, true, c.cred)
		switch {
		case err == nil:
			c.pidns = true
		case cfg.Containment == ContainPIDNamespace:
			return c, fmt.Errorf("runner: containment %q needs a PID namespace per run (root or CAP_SYS_ADMIN): %w", ContainPIDNamespace, err)
		}
	case ContainSession:
	default:
		return c, fmt.Errorf("runner: unknown containment %q (use %s, %s or %s)", cfg.Containment, ContainAuto, ContainPIDNamespace, ContainSession)
	}
	if c.cred != nil && !c.pidns {
		if err := probe(python, false, c.cred); err != nil {
			return c, fmt.Errorf("runner: cannot run scripts as uid %d gid %d (the worker needs root or CAP_SETUID and CAP_SETGID): %w",
				cfg.RunAs.UID, cfg.RunAs.GID, err)
		}
	}
	uid := os.Getuid()
	if c.cred != nil {
		uid = int(c.cred.Uid)
	}
	if cfg.MaxProcesses > 0 && uid != 0 {
		c.nprocUID = uid
	}
	return c, nil
}

// probe starts python once the way runs will be started.
func probe(python string, pidns bool, cred *syscall.Credential) error {
	cmd := exec.Command(python, "-I", "-S", "-c", "pass")
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	attr, err := probeAttr(pidns, cred)
	if err != nil {
		return err
	}
	cmd.SysProcAttr = attr
	out, err := cmd.CombinedOutput()
	if err != nil {
		if len(out) > 0 {
			return fmt.Errorf("%w: %s", err, out)
		}
		return err
	}
	return nil
}
