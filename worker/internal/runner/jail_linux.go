//go:build linux

package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/scrapeplatform/platform/worker/internal/runner/jailhelper"
)

// The namespaces containment (ContainNamespaces, and ContainUserns for a non-root worker; doc.go,
// "Containment") starts each run through a helper, package jailhelper: the worker's own binary,
// re-executed (/proc/self/exe) with argv[0] jailhelper.Arg0 and the run's Spec in the environment
// (jailhelper.Env). This file is the worker's side: the clone flags and attributes of the helper's start,
// the Spec of a run, and the handshake that takes the run's proxy listener and lets the helper go on.
const (
	// jailCloneFlags are the namespaces of a run under ContainNamespaces (ContainUserns adds CLONE_NEWUSER).
	jailCloneFlags = syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC
	// jailHandshakeTimeout bounds the wait for the helper's report (it does a few system calls; a loaded
	// machine may still take a while to schedule it).
	jailHandshakeTimeout = 30 * time.Second
)

// jailSpec and jailKeep are the helper's Spec and Keep.
type (
	jailSpec = jailhelper.Spec
	jailKeep = jailhelper.Keep
)

// maskedDirs get a fresh tmpfs in each run's mount namespace.
var maskedDirs = jailhelper.MaskedDirs

type jail struct {
	ctl   *os.File // the worker's end
	child *os.File // the helper's end (in the child's ExtraFiles)
	ln    net.Listener
}

// newJail prepares a namespaced start of cmd (whose Path, Args and ExtraFiles it rewrites) for job.
func (r *Runner) newJail(cmd *exec.Cmd, job Job, runDir string) (*jail, error) {
	spec := jailSpec{Port: r.proxyPort(), Userns: r.contain.userns, Hide: r.hide}
	if cred := r.credFor(job); cred != nil {
		spec.SetID, spec.UID, spec.GID = true, cred.Uid, cred.Gid
	}
	spec.Tmp, spec.Shm = tmpfsSizes(r.memoryLimit(job))
	spec.Keep = jailKeeps(r.hide, runDir, job.ScriptDir, append(interpreterRoots(cmd.Path), interpreterRoots(r.python)...)...)
	return prepareJail(cmd, spec)
}

// jailAttr are the attributes of a namespaced child: the helper starts as the worker's user and drops to
// the script's itself. For a non-root worker (userns) it starts in a user namespace of its own that maps
// the worker's uid and gid to themselves, holding the capabilities its steps need as ambient ones, which
// it keeps across its execve although it is not root there.
func jailAttr(userns bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL, Cloneflags: jailCloneFlags}
	if userns {
		uid, gid := os.Geteuid(), os.Getegid()
		a.Cloneflags |= syscall.CLONE_NEWUSER
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
		a.GidMappingsEnableSetgroups = false // an unprivileged process maps its gid only after "deny"
		a.AmbientCaps = jailhelper.AmbientCaps
	}
	return a
}

// prepareJail rewrites cmd to start through the helper with spec (its Ctl set here).
func prepareJail(cmd *exec.Cmd, spec jailSpec) (*jail, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	j := &jail{ctl: os.NewFile(uintptr(fds[0]), "jail-control"), child: os.NewFile(uintptr(fds[1]), "jail-control-child")}
	cmd.ExtraFiles = append(cmd.ExtraFiles, j.child)
	spec.Ctl = 2 + len(cmd.ExtraFiles)
	b, _ := json.Marshal(spec)
	python := cmd.Path
	cmd.Path = "/proc/self/exe"
	cmd.Args = append([]string{jailhelper.Arg0, python}, cmd.Args[1:]...)
	cmd.Env = append(cmd.Env, jailhelper.Env+"="+string(b))
	return j, nil
}

// start finishes the handshake with a started helper: it takes the run's listener to the egress proxy and
// lets the helper go on.
func (j *jail) start(serve func(net.Listener)) error {
	_ = j.child.Close()
	c, err := net.FileConn(j.ctl)
	if err != nil {
		return err
	}
	_ = j.ctl.Close()
	uc := c.(*net.UnixConn)
	j.ctl = nil
	defer func() { _ = uc.Close() }() // the helper waits for one byte; EOF after it is harmless
	_ = uc.SetDeadline(time.Now().Add(jailHandshakeTimeout))
	buf := make([]byte, 1024)
	oob := make([]byte, syscall.CmsgSpace(4))
	n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
	if err != nil {
		return fmt.Errorf("namespaced start: no report from the helper: %w", err)
	}
	if msg := string(buf[:n]); msg != "ok" {
		if msg == "" {
			msg = "the helper ended without a report"
		}
		return fmt.Errorf("namespaced start: %s", msg)
	}
	if oobn > 0 {
		msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
		if err != nil || len(msgs) != 1 {
			return fmt.Errorf("namespaced start: bad control message (%v)", err)
		}
		fds, err := syscall.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			return fmt.Errorf("namespaced start: bad control message (%v)", err)
		}
		f := os.NewFile(uintptr(fds[0]), "run-proxy-listener")
		ln, err := net.FileListener(f)
		_ = f.Close()
		if err != nil {
			return fmt.Errorf("namespaced start: the run's listener: %w", err)
		}
		j.ln = ln
		if serve != nil {
			serve(ln)
		}
	}
	if _, err := uc.Write([]byte{1}); err != nil {
		return fmt.Errorf("namespaced start: %w", err)
	}
	return nil
}

// close releases the worker's side: the run's listener (the proxy stops serving it) and the control socket.
func (j *jail) close() {
	if j == nil {
		return
	}
	if j.ln != nil {
		_ = j.ln.Close()
	}
	closeAll(j.ctl, j.child)
}

// tmpfsSizes splits a run's memory limit (or DefaultJailTmpfsBytes without one) between its /tmp (and
// /var/tmp, each) and its /dev/shm: a quarter each, so together they stay within the limit.
func tmpfsSizes(memoryLimit int64) (tmp, shm int64) {
	budget := memoryLimit
	if budget <= 0 {
		budget = DefaultJailTmpfsBytes
	}
	q := max(budget/4, 1<<20)
	return q, q
}

// interpreterRoot is the tree of an interpreter (a venv's root for <venv>/bin/python).
func interpreterRoot(python string) string { return filepath.Dir(filepath.Dir(python)) }

// interpreterRoots are the trees a run of python needs: its own (a venv's root) and, when it is a link,
// its target's (the base interpreter's prefix, with the standard library).
func interpreterRoots(python string) []string {
	roots := []string{interpreterRoot(python)}
	if real, err := filepath.EvalSymlinks(python); err == nil && interpreterRoot(real) != roots[0] {
		roots = append(roots, interpreterRoot(real))
	}
	return roots
}

// jailKeeps lists the folders under the masked ones (/tmp, /var/tmp, /dev/shm and hide) that the run
// needs: the run folder (read-write), the script's folder and the interpreter's trees (read-only); empty
// ones are left out. A folder inside another kept one is reached through it.
func jailKeeps(hide []string, runDir, scriptDir string, pythonRoots ...string) []jailKeep {
	masks := append(slices.Clone(maskedDirs), hide...)
	var keeps []jailKeep
	cands := []jailKeep{{Path: runDir, RW: true}, {Path: scriptDir}}
	for _, p := range pythonRoots {
		cands = append(cands, jailKeep{Path: p})
	}
	for _, k := range cands {
		if k.Path == "" {
			continue
		}
		if real, err := filepath.EvalSymlinks(k.Path); err == nil {
			k.Path = real
		}
		if !under(k.Path, masks) {
			continue
		}
		keeps = append(keeps, k)
	}
	sort.SliceStable(keeps, func(a, b int) bool { return len(keeps[a].Path) < len(keeps[b].Path) })
	var out []jailKeep
	for _, k := range keeps {
		if !under(k.Path, pathsOf(out)) {
			out = append(out, k)
		}
	}
	return out
}

func pathsOf(keeps []jailKeep) []string {
	paths := make([]string, len(keeps))
	for i, k := range keeps {
		paths[i] = k.Path
	}
	return paths
}

// under reports whether p is one of dirs or below one.
func under(p string, dirs []string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// hiddenPaths is what each run's mount namespace hides (Runner.hide): the worker's HOME (the scripts'
// HOME is their run folder), its work folder (other runs' folders, the environment and script caches:
// what a run needs there is bound back) and extra (Config.HidePaths), each resolved; those that do not
// exist, "/", and those already hidden (below /tmp, /var/tmp, /dev/shm or another hidden path) are left
// out. The work folder may not exist yet (New creates it after the probe): its nearest existing folder
// is resolved.
func hiddenPaths(home, workDir string, extra []string) []string {
	var cands []string
	for i, p := range append([]string{home, workDir}, extra...) {
		if p == "" || !filepath.IsAbs(p) {
			continue
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil && i == 1 {
			real, err = resolveExisting(p)
		}
		if err != nil || real == "/" || under(real, maskedDirs) {
			continue
		}
		cands = append(cands, real)
	}
	sort.SliceStable(cands, func(a, b int) bool { return len(cands[a]) < len(cands[b]) })
	var out []string
	for _, p := range cands {
		if !under(p, out) {
			out = append(out, p)
		}
	}
	return out
}

// resolveExisting resolves the links in p's nearest existing ancestor and appends the rest of p.
func resolveExisting(p string) (string, error) {
	p = filepath.Clean(p)
	for rest := ""; ; {
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(real, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) || p == "/" {
			return "", err
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = filepath.Dir(p)
	}
}
