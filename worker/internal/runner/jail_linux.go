//go:build linux

package runner

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

// The namespaces containment (ContainNamespaces; doc.go, "Namespaces") starts each run through a helper:
// the worker's own binary, re-executed (/proc/self/exe) with argv[0] jailArg0 and the run's jailSpec in
// the environment (jailEnv). The helper starts as root in new PID, mount, network and IPC namespaces
// (clone flags set by the worker), and before it executes the interpreter:
//
//  1. makes every mount private (nothing propagates back to the host), mounts a /proc of its own PID
//     namespace, and tmpfs on /tmp, /var/tmp and /dev/shm sized within the run's memory limit; the folders
//     the run needs below them (its run folder read-write; the script's folder and the interpreter's tree
//     read-only) are bind-mounted back at their paths;
//  2. brings up the namespace's loopback, listens on 127.0.0.1:<the egress proxy's port> there, and hands
//     that listening socket to the worker over the control socket (SCM_RIGHTS): the worker's egress proxy
//     accepts the run's connections on it (egress.Proxy.Serve). Nothing else leaves the namespace: it has
//     no other interface, so the broker, loopback services of the host and 169.254.169.254 have no route;
//  3. drops to the script's user (no supplementary groups), sets its parent-death signal again (a change of
//     user clears it), waits for the worker's go-ahead (EOF there means the worker is gone: it exits) and
//     executes the interpreter, which, as PID 1 of its namespace, becomes its init (runner.py).
//
// A failure of any step is sent to the worker as "error: ..." instead of "ok", and the helper exits.
const (
	jailArg0 = "scrape-worker-jail"
	jailEnv  = "SCRAPER_JAIL"
	// jailCloneFlags are the namespaces of a run under ContainNamespaces.
	jailCloneFlags = syscall.CLONE_NEWPID | syscall.CLONE_NEWNS | syscall.CLONE_NEWNET | syscall.CLONE_NEWIPC
	// jailHandshakeTimeout bounds the wait for the helper's report (it does a few system calls; a loaded
	// machine may still take a while to schedule it).
	jailHandshakeTimeout = 30 * time.Second
	oPath                = 0x200000 // O_PATH
)

// jailSpec is what the helper does for one run.
type jailSpec struct {
	Ctl   int        `json:"ctl"`             // the control socket's fd
	SetID bool       `json:"setid,omitempty"` // drop to UID and GID
	UID   uint32     `json:"uid"`
	GID   uint32     `json:"gid"`
	Port  int        `json:"port,omitempty"` // the egress proxy's port; 0: no way out at all
	Tmp   int64      `json:"tmp"`            // tmpfs sizes in bytes
	Shm   int64      `json:"shm"`
	Keep  []jailKeep `json:"keep,omitempty"`
}

// jailKeep is a folder under a masked one that the run still needs, at the same path.
type jailKeep struct {
	Path string `json:"path"`
	RW   bool   `json:"rw,omitempty"`
}

// maskedDirs get a fresh tmpfs in each run's mount namespace.
var maskedDirs = []string{"/tmp", "/var/tmp", "/dev/shm"}

func init() {
	if len(os.Args) > 1 && os.Args[0] == jailArg0 {
		if spec, ok := os.LookupEnv(jailEnv); ok {
			runtime.LockOSThread() // the main thread: the one whose parent-death signal counts
			jailMain(spec)         // never returns
		}
	}
}

// jailMain is the helper (see above).
func jailMain(raw string) {
	var s jailSpec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		fmt.Fprintf(os.Stderr, "scrape worker jail: bad spec: %v\n", err)
		os.Exit(125)
	}
	fail := func(step string, err error) {
		_, _ = syscall.Write(s.Ctl, []byte("error: "+step+": "+err.Error()))
		os.Exit(125)
	}
	if err := jailMounts(s); err != nil {
		fail("mounts", err)
	}
	ln, err := jailNetwork(s.Port)
	if err != nil {
		fail("network", err)
	}
	var rights []byte
	if ln >= 0 {
		rights = syscall.UnixRights(ln)
	}
	if err := syscall.Sendmsg(s.Ctl, []byte("ok"), rights, nil, 0); err != nil {
		os.Exit(125)
	}
	if ln >= 0 {
		_ = syscall.Close(ln)
	}
	if s.SetID {
		// On this thread only: execve follows at once, and the new program has this thread's credentials.
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, 0, 0, 0); e != 0 {
			os.Exit(125)
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESGID, uintptr(s.GID), uintptr(s.GID), uintptr(s.GID)); e != 0 {
			os.Exit(125)
		}
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, uintptr(s.UID), uintptr(s.UID), uintptr(s.UID)); e != 0 {
			os.Exit(125)
		}
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0); e != 0 {
		os.Exit(125)
	}
	var b [1]byte
	if n, err := syscall.Read(s.Ctl, b[:]); n != 1 || err != nil {
		os.Exit(125) // the worker is gone, or gave up on this run
	}
	_ = syscall.Close(s.Ctl)
	env := make([]string, 0, len(os.Environ()))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, jailEnv+"=") {
			env = append(env, kv)
		}
	}
	err = syscall.Exec(os.Args[1], os.Args[1:], env)
	fmt.Fprintf(os.Stderr, "scrape worker jail: exec %s: %v\n", os.Args[1], err)
	os.Exit(127)
}

// jailMounts sets up the run's mount namespace (step 1).
func jailMounts(s jailSpec) error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	// Hold the folders to keep before they are hidden.
	type held struct {
		jailKeep
		fd int
	}
	var keeps []held
	for _, k := range s.Keep {
		fd, err := syscall.Open(k.Path, oPath|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", k.Path, err)
		}
		keeps = append(keeps, held{k, fd})
	}
	if err := syscall.Mount("proc", "/proc", "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	for _, dir := range maskedDirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		size := s.Tmp
		if dir == "/dev/shm" {
			size = s.Shm
		}
		data := "mode=1777,size=" + strconv.FormatInt(size, 10)
		if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, data); err != nil {
			return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
		}
	}
	for _, k := range keeps {
		if err := os.MkdirAll(k.Path, 0o755); err != nil {
			return fmt.Errorf("keep %s: %w", k.Path, err)
		}
		src := "/proc/self/fd/" + strconv.Itoa(k.fd)
		if err := syscall.Mount(src, k.Path, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("keep %s: %w", k.Path, err)
		}
		if !k.RW {
			flags := uintptr(syscall.MS_BIND | syscall.MS_REMOUNT | syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV)
			if err := syscall.Mount("", k.Path, "", flags, ""); err != nil {
				return fmt.Errorf("keep %s read-only: %w", k.Path, err)
			}
		}
		_ = syscall.Close(k.fd)
	}
	return nil
}

// jailNetwork brings up the namespace's loopback and, for port > 0, listens on 127.0.0.1:port there
// (step 2). It returns the listening socket, or -1.
func jailNetwork(port int) (int, error) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer syscall.Close(fd)
	var ifr struct {
		name  [syscall.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	copy(ifr.name[:], "lo")
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCGIFFLAGS, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		return -1, fmt.Errorf("read the flags of lo: %w", e)
	}
	ifr.flags |= syscall.IFF_UP
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCSIFFLAGS, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		return -1, fmt.Errorf("bring up lo: %w", e)
	}
	if port <= 0 {
		return -1, nil
	}
	ln, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := syscall.Bind(ln, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		syscall.Close(ln)
		return -1, fmt.Errorf("listen on 127.0.0.1:%d: %w", port, err)
	}
	if err := syscall.Listen(ln, 128); err != nil {
		syscall.Close(ln)
		return -1, err
	}
	return ln, nil
}

// jail is the worker's side of one namespaced run: the control socket and, once the helper has reported,
// the run's proxy listener.
type jail struct {
	ctl   *os.File // the worker's end
	child *os.File // the helper's end (in the child's ExtraFiles)
	ln    net.Listener
}

// newJail prepares a namespaced start of cmd (whose Path, Args and ExtraFiles it rewrites) for job.
func (r *Runner) newJail(cmd *exec.Cmd, job Job, runDir string) (*jail, error) {
	spec := jailSpec{Port: r.proxyPort()}
	if cred := r.credFor(job); cred != nil {
		spec.SetID, spec.UID, spec.GID = true, cred.Uid, cred.Gid
	}
	spec.Tmp, spec.Shm = tmpfsSizes(r.memoryLimit(job))
	spec.Keep = jailKeeps(runDir, job.ScriptDir, interpreterRoot(cmd.Path))
	return prepareJail(cmd, spec)
}

// jailAttr are the attributes of a namespaced child: the helper starts as the worker's user (root) and
// drops to the script's itself.
func jailAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL, Cloneflags: jailCloneFlags}
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
	cmd.Args = append([]string{jailArg0, python}, cmd.Args[1:]...)
	cmd.Env = append(cmd.Env, jailEnv+"="+string(b))
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

// jailKeeps lists the folders under the masked ones that the run needs: the run folder (read-write), the
// script's folder and the interpreter's tree (read-only). A folder inside another kept one is reached
// through it.
func jailKeeps(runDir, scriptDir, pythonRoot string) []jailKeep {
	var keeps []jailKeep
	for _, k := range []jailKeep{{Path: runDir, RW: true}, {Path: scriptDir}, {Path: pythonRoot}} {
		if real, err := filepath.EvalSymlinks(k.Path); err == nil {
			k.Path = real
		}
		if k.Path == "" || !underMasked(k.Path) {
			continue
		}
		keeps = append(keeps, k)
	}
	sort.SliceStable(keeps, func(a, b int) bool { return len(keeps[a].Path) < len(keeps[b].Path) })
	var out []jailKeep
	for _, k := range keeps {
		inside := false
		for _, o := range out {
			if k.Path == o.Path || strings.HasPrefix(k.Path, o.Path+"/") {
				inside = true
			}
		}
		if !inside {
			out = append(out, k)
		}
	}
	return out
}

func underMasked(p string) bool {
	for _, d := range maskedDirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}
