//go:build linux

// Package jailhelper is the helper side of the runner's namespaces containment (package runner's
// jail_linux.go is the worker's side; doc.go, "Containment"): the worker's own binary, re-executed through
// /proc/self/exe with argv[0] Arg0 and a Spec in the environment variable Env, inside the run's new
// namespaces. Its init catches that start and never returns; in any other start it does nothing.
//
// It is a package of its own, importing only the standard library's lightest packages, so that Go
// initializes it early: a package's init runs only after those of the packages it imports and of every
// ready package whose path sorts before it, and package runner's init came last of the worker's 155
// packages, 18 ms after the helper's start, of which 12 ms were the other packages' inits (Prometheus'
// client, the AWS SDK's endpoint tables, …) that the helper never uses. Here it runs about 6 ms in: every
// contained start, cold or warm, saves the rest (GODEBUG=inittrace=1 shows the order).
package jailhelper

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// The helper starts in new PID, mount, network and IPC namespaces (clone flags set by the worker): as root
// for a root worker; for a non-root worker inside a new user namespace too, which maps only the worker's
// uid and gid (to the same numbers) and in which the helper holds the capabilities its steps need
// (ambient, so they survive its execve: runner's jailAttr). Before it executes the interpreter the helper:
//
//  1. makes every mount private (nothing propagates back to the host), mounts a /proc of its own PID
//     namespace, tmpfs on /tmp, /var/tmp and /dev/shm sized within the run's memory limit, and an empty
//     read-only tmpfs on each hidden folder (the worker's HOME, its work folder, Config.HidePaths; any
//     other hidden path, a file or a socket, gets /dev/null); the folders the run needs below them (its
//     run folder read-write; the script's folder and the interpreter's trees read-only) are bind-mounted
//     back at their paths. A read-only remount keeps the flags of the mount it copies (nosuid, nodev,
//     noexec, read-only, atime): in a user namespace the kernel locks those of mounts inherited from the
//     host;
//  2. brings up the namespace's loopback, listens on 127.0.0.1:<the egress proxy's port> there, and hands
//     that listening socket to the worker over the control socket (SCM_RIGHTS): the worker's egress proxy
//     accepts the run's connections on it (egress.Proxy.Serve). Nothing else leaves the namespace: it has
//     no other interface, so the broker, loopback services of the host and 169.254.169.254 have no route;
//  3. drops to the script's user (root worker: setresuid, no supplementary groups), or, in a user
//     namespace, drops every capability (bounding set, ambient, effective, permitted, inheritable): the
//     script keeps the worker's uid and can neither undo the mounts nor touch the network setup (a user
//     namespace it makes itself finds them locked); sets no_new_privs (no setuid or file-capability gain
//     from any program the script executes), sets its parent-death signal again (a change of user clears
//     it), waits for the worker's go-ahead (EOF there means the worker is gone: it exits) and executes the
//     interpreter, which, as PID 1 of its namespace, becomes its init (runner.py).
//
// A failure of any step is sent to the worker as "error: ..." instead of "ok", and the helper exits.

const (
	// Arg0 is the helper's argv[0]; Env the environment variable that holds its Spec.
	Arg0 = "scrape-worker-jail"
	Env  = "SCRAPER_JAIL"
	// PRSetNoNewPrivs is prctl's PR_SET_NO_NEW_PRIVS.
	PRSetNoNewPrivs = 38
	oPath           = 0x200000 // O_PATH
)

// Capabilities (linux/capability.h) the helper holds in a run's user namespace until it drops them all,
// and the prctl and capset numbers that drop them.
const (
	capSetPCAP         = 8  // to empty the bounding set
	capNetBindService  = 10 // a proxy port below 1024 (the probe's is 9)
	capNetAdmin        = 12 // bring up lo
	capSysAdmin        = 21 // the mounts
	prCapAmbient       = 47 // PR_CAP_AMBIENT
	prCapAmbientClear  = 4  // PR_CAP_AMBIENT_CLEAR_ALL
	linuxCapVersion3   = 0x20080522
	lastCapabilityEver = 63
)

// AmbientCaps are what the helper keeps across its execve in a user namespace (the worker starts it with them).
var AmbientCaps = []uintptr{capSetPCAP, capNetBindService, capNetAdmin, capSysAdmin}

// Spec is what the helper does for one run: the worker encodes it as JSON into the helper's Env.
type Spec struct {
	Ctl   int    `json:"ctl"`             // the control socket's fd
	SetID bool   `json:"setid,omitempty"` // drop to UID and GID
	UID   uint32 `json:"uid"`
	GID   uint32 `json:"gid"`
	Port  int    `json:"port,omitempty"` // the egress proxy's port; 0: no way out at all
	Tmp   int64  `json:"tmp"`            // tmpfs sizes in bytes
	Shm   int64  `json:"shm"`
	// Userns: the helper runs in a user namespace of its own (ContainUserns) and drops every capability.
	Userns bool     `json:"userns,omitempty"`
	Hide   []string `json:"hide,omitempty"` // folders (an empty tmpfs) and files (/dev/null) to hide
	Keep   []Keep   `json:"keep,omitempty"`
}

// Keep is a folder under a masked or hidden one that the run still needs, at the same path.
type Keep struct {
	Path string `json:"path"`
	RW   bool   `json:"rw,omitempty"`
}

// MaskedDirs get a fresh tmpfs in each run's mount namespace.
var MaskedDirs = []string{"/tmp", "/var/tmp", "/dev/shm"}

func init() {
	if len(os.Args) > 1 && os.Args[0] == Arg0 {
		if spec, ok := os.LookupEnv(Env); ok {
			runtime.LockOSThread() // the main thread: the one whose parent-death signal counts
			run(spec)              // never returns
		}
	}
}

// run is the helper (see the package comment).
func run(raw string) {
	var s Spec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		fmt.Fprintf(os.Stderr, "scrape worker jail: bad spec: %v\n", err)
		os.Exit(125)
	}
	fail := func(step string, err error) {
		_, _ = syscall.Write(s.Ctl, []byte("error: "+step+": "+err.Error()))
		os.Exit(125)
	}
	if err := mounts(s); err != nil {
		fail("mounts", err)
	}
	ln, err := network(s.Port)
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
	// On this thread only: execve follows at once, and the new program has this thread's credentials.
	if s.SetID {
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
	if s.Userns && dropCapabilities() != nil {
		os.Exit(125)
	}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, PRSetNoNewPrivs, 1, 0, 0, 0, 0); e != 0 {
		os.Exit(125)
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
		if !strings.HasPrefix(kv, Env+"=") {
			env = append(env, kv)
		}
	}
	err = syscall.Exec(os.Args[1], os.Args[1:], env)
	fmt.Fprintf(os.Stderr, "scrape worker jail: exec %s: %v\n", os.Args[1], err)
	os.Exit(127)
}

func mounts(s Spec) error {
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	// Hold the folders to keep before they are hidden.
	type held struct {
		Keep
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
	// A new proc matches the host's: in a user namespace the kernel mounts one only when it shows no more
	// than the host's does, with its locked flags (read-only, atime).
	procFlags := uintptr(syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC) | mountFlags("/proc")
	if err := syscall.Mount("proc", "/proc", "proc", procFlags, ""); err != nil {
		return fmt.Errorf("mount /proc: %w", err)
	}
	for _, dir := range MaskedDirs {
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
	hidden := map[string]uintptr{} // what is hidden, and the flags of its read-only remount
	for _, p := range s.Hide {
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
			continue // gone since New: nothing to hide
		case fi.IsDir():
			// Written to only to make the mount points of the folders kept below it; read-only after.
			err = syscall.Mount("tmpfs", p, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "mode=0755,size=1m,nr_inodes=4096")
			hidden[p] = syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC
		default: // a file, a socket (/run/docker.sock), ...: /dev/null, a device (so no nodev)
			err = syscall.Mount("/dev/null", p, "", syscall.MS_BIND, "")
			hidden[p] = syscall.MS_NOSUID | syscall.MS_NOEXEC
		}
		if err != nil {
			return fmt.Errorf("hide %s: %w", p, err)
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
			if err := remountReadOnly(k.Path, syscall.MS_NOSUID|syscall.MS_NODEV); err != nil {
				return fmt.Errorf("keep %s read-only: %w", k.Path, err)
			}
		}
		_ = syscall.Close(k.fd)
	}
	for p, flags := range hidden {
		if err := remountReadOnly(p, flags); err != nil {
			return fmt.Errorf("hide %s read-only: %w", p, err)
		}
	}
	return nil
}

// remountReadOnly makes the mount at path read-only, with the flags add, keeping its other flags: in a
// user namespace a remount that would clear a flag the kernel locked (nosuid, nodev, noexec, an atime
// mode) is refused.
func remountReadOnly(path string, add uintptr) error {
	flags := syscall.MS_BIND | syscall.MS_REMOUNT | syscall.MS_RDONLY | add | mountFlags(path)
	return syscall.Mount("", path, "", flags, "")
}

// mountFlags are the flags of the mount at path, as mount(2) takes them: read-only, nosuid, nodev,
// noexec and its atime mode (0 if statfs fails: the mount that follows says why).
func mountFlags(path string) uintptr {
	const ( // statfs f_flags (ST_*)
		stRdonly     = 0x1
		stNosuid     = 0x2
		stNodev      = 0x4
		stNoexec     = 0x8
		stNoatime    = 0x400
		stNodiratime = 0x800
		stRelatime   = 0x1000
	)
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0
	}
	var flags uintptr
	for _, f := range []struct{ st, ms uintptr }{
		{stRdonly, syscall.MS_RDONLY}, {stNosuid, syscall.MS_NOSUID}, {stNodev, syscall.MS_NODEV},
		{stNoexec, syscall.MS_NOEXEC}, {stNoatime, syscall.MS_NOATIME}, {stNodiratime, syscall.MS_NODIRATIME},
		{stRelatime, syscall.MS_RELATIME},
	} {
		if uintptr(st.Flags)&f.st != 0 {
			flags |= f.ms
		}
	}
	if flags&(syscall.MS_NOATIME|syscall.MS_RELATIME) == 0 {
		flags |= syscall.MS_STRICTATIME
	}
	return flags
}

// dropCapabilities leaves the calling thread (whose credentials execve passes on) without any capability:
// the bounding set emptied (CAP_SETPCAP, held until then, allows it), the ambient set cleared, then the
// effective, permitted and inheritable sets.
func dropCapabilities() error {
	for c := uintptr(0); c <= lastCapabilityEver; c++ {
		if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, syscall.PR_CAPBSET_DROP, c, 0, 0, 0, 0); e != 0 {
			if e == syscall.EINVAL {
				break // past the kernel's last capability
			}
			return e
		}
	}
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, prCapAmbient, prCapAmbientClear, 0, 0, 0, 0); e != 0 {
		return e
	}
	hdr := struct {
		version uint32
		pid     int32
	}{version: linuxCapVersion3}
	var data [2]struct{ effective, permitted, inheritable uint32 }
	if _, _, e := syscall.RawSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return e
	}
	return nil
}

// network brings up the namespace's loopback and, for port > 0, listens on 127.0.0.1:port there
// (step 2). It returns the listening socket, or -1.
func network(port int) (int, error) {
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
