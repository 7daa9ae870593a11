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
	// ContainAuto uses namespaces when the worker may create them (ContainNamespaces as root,
	// ContainUserns as any other user), else a PID namespace, else a session.
	ContainAuto = "auto"
	// ContainNamespaces requires PID, mount, network and IPC namespaces per run: a private /proc, /tmp,
	// /var/tmp and /dev/shm, the worker's HOME, work folder and Config.HidePaths hidden, and no network
	// but the egress proxy (jail_linux.go). A root worker makes them itself; a non-root worker makes them
	// inside a user namespace of each run's own, and then reports ContainUserns. New fails without.
	ContainNamespaces = "namespaces"
	// ContainUserns is ContainNamespaces for a non-root worker: the namespaces are made inside a user
	// namespace of the run's own, where the kernel allows unprivileged ones (not under Docker's default
	// seccomp profile). Scripts run as the worker's own uid, without any capability. New fails without,
	// and as root (a root worker makes the namespaces without a user namespace: ContainNamespaces).
	ContainUserns = "userns"
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
	mode  string // ContainNamespaces, ContainUserns, ContainPIDNamespace or ContainSession: what holds
	pidns bool   // each run is PID 1 (plus runner.py's init fork) of its own PID namespace
	jail  bool   // ... and has mount, network and IPC namespaces of its own, set up by the helper
	// userns: ... made inside a user namespace of the run's own that maps only the worker's uid and gid
	// (a non-root worker); the helper drops every capability before it executes the interpreter.
	userns bool
	// nproc: RLIMIT_NPROC is enforced (not for scripts that run as root, which the kernel exempts, nor with
	// MaxProcesses < 0).
	nproc bool
	// fallback says why auto settled for less than namespaces, when it did.
	fallback string
}

// chooseContainment settles the containment mode, probing the kernel with python (which must exist).
// probeCred is the user the probe runs python as (a script's, or nil); hide is what the jail hides
// (Runner.hide).
func chooseContainment(cfg Config, python string, probeCred *syscall.Credential, hide []string) (containment, error) {
	c := containment{mode: ContainSession}
	root := os.Geteuid() == 0
	switch cfg.Containment {
	case ContainAuto, ContainNamespaces, ContainUserns:
		if cfg.Containment == ContainUserns && root {
			return c, fmt.Errorf("runner: containment %q is for a non-root worker; a root worker makes the namespaces without a user namespace (use %s or %s)", ContainUserns, ContainNamespaces, ContainAuto)
		}
		var err error
		switch {
		case !root && probeCred != nil:
			// Scripts of other uids need a root worker; in a user namespace only the worker's own uid is
			// mapped. Refused below, as without namespaces.
			err = errors.New("scripts run as other users (SCRIPT_RUN_AS, SCRIPT_UID_RANGE) need a root worker")
		default:
			err = probeJail(python, probeCred, !root, hide)
		}
		if err == nil {
			c.mode, c.pidns, c.jail, c.userns = ContainNamespaces, true, true, !root
			if !root {
				c.mode = ContainUserns
			}
			break
		}
		switch {
		case cfg.Containment == ContainUserns:
			return c, fmt.Errorf("runner: containment %q needs unprivileged user namespaces (refused by some kernels' settings and by Docker's default seccomp profile): %w", ContainUserns, err)
		case cfg.Containment == ContainNamespaces && root:
			return c, fmt.Errorf("runner: containment %q needs PID, mount, network and IPC namespaces per run (root or CAP_SYS_ADMIN): %w", ContainNamespaces, err)
		case cfg.Containment == ContainNamespaces:
			return c, fmt.Errorf("runner: containment %q needs PID, mount, network and IPC namespaces per run: a root worker, or unprivileged user namespaces for this non-root one (refused by some kernels' settings and by Docker's default seccomp profile): %w", ContainNamespaces, err)
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
		return c, fmt.Errorf("runner: unknown containment %q (use %s, %s, %s, %s or %s)", cfg.Containment, ContainAuto, ContainNamespaces, ContainUserns, ContainPIDNamespace, ContainSession)
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
// ContainNamespaces (userns: ContainUserns), with a listener for a proxy on port 9 of the run's loopback
// and hide hidden.
func probeJail(python string, cred *syscall.Credential, userns bool, hide []string) error {
	if !userns && os.Geteuid() != 0 {
		return errors.New("the worker is not root")
	}
	cmd := exec.Command(python, "-I", "-S", "-c", "pass")
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	spec := jailSpec{Port: 9, Tmp: 1 << 20, Shm: 1 << 20, Userns: userns, Hide: hide,
		Keep: jailKeeps(hide, "", "", interpreterRoots(python)...)}
	if cred != nil {
		spec.SetID, spec.UID, spec.GID = true, cred.Uid, cred.Gid
	}
	j, err := prepareJail(cmd, spec)
	if err != nil {
		return err
	}
	defer j.close()
	cmd.SysProcAttr = jailAttr(userns)
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
