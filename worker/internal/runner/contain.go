package runner

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// Containment modes (Config.Containment); doc.go explains what each guarantees.
const (
	// ContainAuto uses namespaces when the worker may create them, else a PID namespace, else a session.
	ContainAuto = "auto"
	// ContainNamespaces requires PID, mount, network and IPC namespaces per run (root or CAP_SYS_ADMIN): a
	// private /proc, /tmp, /var/tmp and /dev/shm, and no network but the egress proxy (jail_linux.go). New
	// fails without.
	ContainNamespaces = "namespaces"
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
	mode  string // ContainNamespaces, ContainPIDNamespace or ContainSession: what holds
	pidns bool   // each run is PID 1 (plus runner.py's init fork) of its own PID namespace
	jail  bool   // ... and has mount, network and IPC namespaces of its own, set up by the helper
	// nproc: RLIMIT_NPROC is enforced (not for scripts that run as root, which the kernel exempts, nor with
	// MaxProcesses < 0).
	nproc bool
	// fallback says why auto settled for less than namespaces, when it did.
	fallback string
}

// chooseContainment settles the containment mode, probing the kernel with python (which must exist).
// probeCred is the user the probe runs python as (a script's, or nil).
func chooseContainment(cfg Config, python string, probeCred *syscall.Credential) (containment, error) {
	c := containment{mode: ContainSession}
	switch cfg.Containment {
	case ContainAuto, ContainNamespaces:
		err := probeJail(python, probeCred)
		if err == nil {
			c.mode, c.pidns, c.jail = ContainNamespaces, true, true
			break
		}
		if cfg.Containment == ContainNamespaces {
			return c, fmt.Errorf("runner: containment %q needs PID, mount, network and IPC namespaces per run (root or CAP_SYS_ADMIN): %w", ContainNamespaces, err)
		}
		c.fallback = err.Error()
		if probe(python, true, probeCred) == nil {
			c.mode, c.pidns = ContainPIDNamespace, true
		}
	case ContainPIDNamespace:
		if err := probe(python, true, probeCred); err != nil {
			return c, fmt.Errorf("runner: containment %q needs a PID namespace per run (root or CAP_SYS_ADMIN): %w", ContainPIDNamespace, err)
		}
		c.mode, c.pidns = ContainPIDNamespace, true
	case ContainSession:
	default:
		return c, fmt.Errorf("runner: unknown containment %q (use %s, %s, %s or %s)", cfg.Containment, ContainAuto, ContainNamespaces, ContainPIDNamespace, ContainSession)
	}
	if probeCred != nil && !c.pidns {
		if err := probe(python, false, probeCred); err != nil {
			return c, fmt.Errorf("runner: cannot run scripts as uid %d gid %d (the worker needs root or CAP_SETUID and CAP_SETGID): %w",
				probeCred.Uid, probeCred.Gid, err)
		}
	}
	c.nproc = cfg.MaxProcesses > 0 && (probeCred != nil || os.Getuid() != 0)
	return c, nil
}

// probeJail starts python once through the namespaces helper, as runs are started under
// ContainNamespaces, with a listener for a proxy on port 9 of the run's loopback.
func probeJail(python string, cred *syscall.Credential) error {
	if os.Geteuid() != 0 {
		return errors.New("the worker is not root")
	}
	cmd := exec.Command(python, "-I", "-S", "-c", "pass")
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	spec := jailSpec{Port: 9, Tmp: 1 << 20, Shm: 1 << 20}
	if cred != nil {
		spec.SetID, spec.UID, spec.GID = true, cred.Uid, cred.Gid
	}
	j, err := prepareJail(cmd, spec)
	if err != nil {
		return err
	}
	defer j.close()
	cmd.SysProcAttr = jailAttr()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Registered as a run's leader, so the sweep of session-mode runners in this process (tests) leaves it.
	if err := startChild(cmd); err != nil {
		return err
	}
	defer forgetChild(cmd.Process.Pid)
	var gotListener bool
	err = j.start(func(ln net.Listener) { gotListener = ln != nil })
	if werr := cmd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("%w: %s", werr, bytes.TrimSpace(out.Bytes()))
	}
	if err == nil && !gotListener {
		err = errors.New("the helper handed over no listener")
	}
	return err
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
