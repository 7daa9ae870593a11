//go:build linux

package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/scripttest"
	"github.com/scrapeplatform/platform/worker/internal/runner/jailhelper"
)

// The tests of ContainUserns run the runner as a non-root worker. CI runs the tests as root: asNonRoot
// then runs the test again in a copy of the test binary as uid 65534 (nobody), which is that worker.

// childEnv names the test a child process of asNonRoot runs.
const childEnv = "RUNNER_TEST_CHILD"

// outsideTmpEnv names a folder of the child's own outside /tmp, /var/tmp and /dev/shm (the child's HOME
// and work folders go there, so that what hides them is the hiding of HOME and of the work folder, not
// the run's tmpfs on /tmp).
const outsideTmpEnv = "RUNNER_TEST_OUTSIDE_TMP"

// asNonRoot runs the calling test as a non-root worker would. As root, it runs the same test in a copy of
// the test binary as uid 65534, with a HOME of that user's own outside /tmp, logs its output, fails or
// skips the test as the child did, and returns true: the caller returns. In that child, or when the tests
// do not run as root, it returns false and the caller runs the test in place; with always, a non-root
// test runs in a child process too (for a test that changes its process for good).
func asNonRoot(t *testing.T, always bool) bool {
	t.Helper()
	if os.Getenv(childEnv) == t.Name() {
		return false
	}
	root := os.Geteuid() == 0
	if !root && !always {
		return false
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := scripttest.ReachableTempDir(t)
	bin := filepath.Join(dir, "runner.test")
	copyFile(t, exe, bin)
	env := []string{childEnv + "=" + t.Name(), "LANG=C.UTF-8", "PATH=/usr/local/bin:/usr/bin:/bin"}
	attr := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	uid := os.Geteuid()
	if root {
		uid = int(sandboxUser.UID)
		attr.Credential = &syscall.Credential{Uid: sandboxUser.UID, Gid: sandboxUser.GID, Groups: []uint32{}}
		tmp := filepath.Join(dir, "tmp")
		outside := mkdirOutsideTmp(t)
		home := filepath.Join(outside, "home")
		for _, d := range []string{tmp, home} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		for _, d := range []string{tmp, outside, home} {
			if err := os.Chown(d, uid, uid); err != nil {
				t.Fatal(err)
			}
		}
		env = append(env, "TMPDIR="+tmp, "HOME="+home, outsideTmpEnv+"="+outside,
			"RUNNER_TEST_PYTHON="+scripttest.SandboxPython(t, uid, "RUNNER_SANDBOX_PYTHON"))
	} else {
		for _, k := range []string{"HOME", "TMPDIR", "RUNNER_TEST_PYTHON", outsideTmpEnv} {
			if v, ok := os.LookupEnv(k); ok {
				env = append(env, k+"="+v)
			}
		}
	}
	args := []string{"-test.run=^" + t.Name() + "$", "-test.v", "-test.count=1"}
	if d, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout="+time.Until(d).Round(time.Second).String())
	}
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Dir, cmd.Env, cmd.SysProcAttr = dir, env, attr
	runtime.LockOSThread() // Pdeathsig: the thread that starts the child must outlive it
	out, err := cmd.CombinedOutput()
	runtime.UnlockOSThread()
	t.Logf("%s, run as uid %d in a process of its own:\n%s", t.Name(), uid, out)
	switch {
	case bytes.Contains(out, []byte("--- SKIP: "+t.Name()+" ")):
		t.Skipf("skipped as uid %d (see its output above); not passed", uid)
	case err != nil || !bytes.Contains(out, []byte("--- PASS: "+t.Name()+" ")):
		t.Fatalf("%s failed as uid %d: %v", t.Name(), uid, err)
	}
	return true
}

// mkdirOutsideTmp makes a folder (removed when t ends) that no tmpfs of a run hides: below /run, /var/lib
// or /srv.
func mkdirOutsideTmp(t *testing.T) string {
	t.Helper()
	for _, parent := range []string{"/run", "/var/lib", "/srv"} {
		dir, err := os.MkdirTemp(parent, "runner-test-")
		if err == nil {
			t.Cleanup(func() { _ = os.RemoveAll(dir) })
			return dir
		}
	}
	t.Fatal("found no folder outside /tmp to make the non-root worker's HOME in")
	return ""
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// requireUserns skips the test, saying why, when the kernel refuses this (non-root) process user, PID,
// mount, network and IPC namespaces; it fails it when the kernel makes them but the runner's probe of
// ContainUserns fails.
func requireUserns(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		t.Fatal("requireUserns is for a non-root test process (asNonRoot)")
	}
	cmd := exec.Command("/bin/true")
	a := jailAttr(true)
	a.AmbientCaps, a.Setsid = nil, false
	cmd.SysProcAttr = a
	if err := cmd.Run(); err != nil {
		t.Skipf("the kernel refuses unprivileged user namespaces to uid %d here (%v): ContainUserns cannot be tested; skipped, not passed", os.Geteuid(), err)
	}
	if err := probeJail(testPython(t), nil, true, nil); err != nil {
		t.Fatalf("the kernel makes unprivileged user namespaces, yet the runner's namespaces helper failed in one: %v", err)
	}
}

// usernsRunner builds a runner of this non-root process under ContainUserns (asked for as
// ContainNamespaces: a non-root worker gets it so), its work folder outside /tmp when the test has one;
// env's proxy is its way out.
func usernsRunner(t *testing.T, env hostileEnv, edit func(*Config)) *Runner {
	t.Helper()
	r := newTestRunner(t, func(c *Config) {
		c.Containment = ContainNamespaces
		if outside := os.Getenv(outsideTmpEnv); outside != "" {
			dir, err := os.MkdirTemp(outside, "work-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = os.RemoveAll(dir) })
			c.WorkDir = filepath.Join(dir, "work")
		}
		if env.proxy != nil {
			c.ProxyURL, c.ServeProxy = env.proxy.URL(), env.proxy.Serve
		}
		if edit != nil {
			edit(c)
		}
	})
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) }) // not t.Context(): it is cancelled before cleanups run
	if got := r.Containment(); got != ContainUserns || !r.PIDNamespace() {
		t.Fatalf("Containment() = %q (PID namespace %v), want %q", got, r.PIDNamespace(), ContainUserns)
	}
	return r
}

// secretInHome writes a secret into a new folder in the worker's HOME and returns its path.
func secretInHome(t *testing.T) string {
	t.Helper()
	home, err := os.UserHomeDir()
	if err != nil || home == "/" {
		t.Fatalf("the test needs a HOME of its own (got %q, %v)", home, err)
	}
	dir, err := os.MkdirTemp(home, ".runner-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	p := filepath.Join(dir, "credentials")
	if err := os.WriteFile(p, []byte("hunter2-in-the-home"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestUsernsContainTheScript: a non-root worker (uid 65534 when the tests run as root) contains each run,
// cold, warm and on a shared async runner, in user, PID, mount, network and IPC namespaces of its own. A
// hostile script there runs as the worker's uid without any capability (no_new_privs set); its /proc
// shows only its run's processes; /tmp, /var/tmp and /dev/shm are tmpfs of its own; the worker's HOME
// (a secret file in it), its work folder (a file planted there) and the host's /tmp (a mark) are out of
// sight; unmounting or mounting over any of that is refused, also from a user namespace the script makes
// itself; it cannot signal the worker or another process of the worker's uid (not in its PID namespace);
// its raw sockets reach neither a loopback listener of the host nor the broker's port nor the metadata
// address, and HTTP through the egress proxy still works.
func TestUsernsContainTheScript(t *testing.T) {
	t.Parallel()
	if asNonRoot(t, false) {
		return
	}
	requireUserns(t)
	env := newHostileEnv(t)
	// A file named in SCRIPT_HIDE_PATHS, outside HOME and the work folder (when the test has a folder
	// outside /tmp: as root, in the child).
	var hiddenFile string
	if outside := os.Getenv(outsideTmpEnv); outside != "" {
		hiddenFile = filepath.Join(outside, "worker.conf")
		if err := os.WriteFile(hiddenFile, []byte("hunter2-in-a-hidden-file"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r := usernsRunner(t, env, func(c *Config) {
		if hiddenFile != "" {
			c.HidePaths = []string{hiddenFile}
		}
	})
	secret := secretInHome(t)
	home, _ := os.UserHomeDir()
	if realHome, err := filepath.EvalSymlinks(home); err != nil || !under(realHome, slices.Concat(r.hide, maskedDirs)) {
		t.Fatalf("the worker's HOME %s is not hidden (hidden: %v; %v)", home, r.hide, err)
	}
	planted := filepath.Join(r.scratch.dir, "planted")
	if err := os.WriteFile(planted, []byte("hunter2-in-the-work-folder"), 0o600); err != nil {
		t.Fatal(err)
	}
	mark := filepath.Join("/tmp", fmt.Sprintf("mark-userns-%d", os.Getpid()))
	if err := os.WriteFile(mark, []byte("hunter2-in-the-hosts-tmp"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Remove(mark) })
	// A process of the worker's own uid outside the run, which the script must not reach.
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() })
	if err := syscall.Kill(sleeper.Process.Pid, 0); err != nil {
		t.Fatalf("control: the worker cannot signal its own process: %v", err)
	}

	for _, warm := range []bool{false, true} {
		t.Run(fmt.Sprintf("warm=%v", warm), func(t *testing.T) {
			params, _ := json.Marshal(map[string]any{
				"connect": []string{brokerAddr, env.listener, metadataAddr},
				"amqp":    []string{brokerAddr},
				"fetch":   env.site + "/page",
				"signals": []int{os.Getpid(), sleeper.Process.Pid},
			})
			j := job(t, "probes_containment", string(params), 60*time.Second)
			j.Warm, j.Version = warm, "v1"
			p := runProbes(t, r, j)
			if p.UID != os.Geteuid() || p.GID != os.Getegid() {
				t.Errorf("uid %d gid %d; want the worker's, %d %d", p.UID, p.GID, os.Geteuid(), os.Getegid())
			}
			checkJailed(t, p)
			if len(p.Signals) != 2 {
				t.Errorf("signals tried: %v", p.Signals)
			}
			for pid, got := range p.Signals {
				if got != "ProcessLookupError" {
					t.Errorf("signalling %s (the worker or a process of its uid): %q, want ProcessLookupError", pid, got)
				}
			}
		})
	}

	t.Run("files", func(t *testing.T) {
		paths := []string{secret, planted, mark, fmt.Sprintf("/proc/%d/environ", os.Getpid())}
		if hiddenFile != "" {
			paths = append(paths, hiddenFile)
		}
		params, _ := json.Marshal(map[string]any{"paths": paths})
		res := mustRun(t, r, job(t, "reads_files", string(params), 20*time.Second))
		if res.Status != contract.StatusCompleted {
			t.Fatalf("%q %+v", res.Status, res.Err)
		}
		t.Logf("reads_files: %s", res.Data)
		var got struct {
			UID     int
			Environ map[string]string
			Files   map[string]map[string]string
		}
		if err := json.Unmarshal(res.Data, &got); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(res.Data), "hunter2") {
			t.Fatalf("the script read a secret: %s", res.Data)
		}
		for path, f := range got.Files {
			switch {
			case path == hiddenFile: // /dev/null in its place
				if r, ok := f["read"]; !ok || r != "" {
					t.Errorf("%s: %v; want it empty (/dev/null)", path, f)
				}
			case !strings.HasPrefix(f["error"], "FileNotFoundError"):
				t.Errorf("%s: %v; want it out of sight (FileNotFoundError)", path, f)
			}
		}
		if len(got.Files) != len(paths) || got.UID != os.Geteuid() {
			t.Errorf("uid %d, files %v", got.UID, got.Files)
		}
		// The script's own HOME is its run folder, which it can use.
		if h := got.Environ["HOME"]; !strings.HasPrefix(h, r.scratch.dir) {
			t.Errorf("the script's HOME is %q, want its run folder", h)
		}
	})

	t.Run("mounts", func(t *testing.T) {
		checkPokes(t, runPokes(t, r, []string{mark, secret, planted}), true)
	})

	t.Run("shared async runner", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Go(func() {
				j := job(t, "async_echo", fmt.Sprintf(`{"n": %d}`, i), 20*time.Second)
				j.Warm, j.Version = true, "v1"
				res, err := r.Run(t.Context(), j)
				if err != nil || res.Status != contract.StatusCompleted || !strings.Contains(string(res.Data), fmt.Sprintf(`"n":%d`, i)) {
					t.Errorf("call %d: %q %s %+v %v", i, res.Status, res.Data, res.Err, err)
				}
			})
		}
		wg.Wait()
	})
}

// TestUsernsKeepTempPrivate: under ContainUserns marks one run leaves in /tmp, /var/tmp and /dev/shm are
// not there for another run of the same uid, nor on the host; 300 MiB into /dev/shm under a 64 MiB memory
// limit fails for want of space.
func TestUsernsKeepTempPrivate(t *testing.T) {
	t.Parallel()
	if asNonRoot(t, false) {
		return
	}
	requireUserns(t)
	r := usernsRunner(t, hostileEnv{}, nil)
	checkTempPrivate(t, r, fmt.Sprintf("userns-test-%d", os.Getpid()), true)
}

// TestUsernsEndsWhatTheScriptStarts: under ContainUserns a fork bomb meets the process limit, which the
// kernel counts in the run's own user namespace (SCRIPT_MAX_PROCESSES plus the runner and its init), and
// nothing of it is left after the run; a process that leaves its run's session (setsid) dies with the
// run, cold, and with its warm runner, which the test sees it alive in first.
func TestUsernsEndsWhatTheScriptStarts(t *testing.T) {
	t.Parallel()
	if asNonRoot(t, false) {
		return
	}
	requireUserns(t)
	r := usernsRunner(t, hostileEnv{}, func(c *Config) { c.MaxProcesses = 32 })
	if !r.ProcessLimit() {
		t.Fatal("the process limit is not enforced")
	}

	t.Run("fork bomb", func(t *testing.T) {
		j := job(t, "fork_bomb", `{}`, 30*time.Second)
		res := mustRun(t, r, j)
		if res.Status != contract.StatusFailed || res.Err == nil || res.Err.Type != "BlockingIOError" ||
			!strings.Contains(res.Err.Message, "limit of") {
			t.Fatalf("got %q %+v; want a BlockingIOError that names the process limit", res.Status, res.Err)
		}
		if want := "limit of 34 processes"; nprocPerUserNamespace() && !strings.Contains(res.Err.Message, want) {
			t.Errorf("%s; want the run's own count: %q (32 and the runner and its init)", res.Err.Message, want)
		}
		t.Logf("fork bomb stopped: %s", res.Err.Message)
		waitFor(t, func() bool { return len(processesWith(j.ScriptDir)) == 0 }, "the fork bomb's processes to be gone")
	})

	t.Run("escapee", func(t *testing.T) {
		token := fmt.Sprintf("escapee-%d-cold", os.Getpid())
		res := mustRun(t, r, job(t, "pokes_the_jail", fmt.Sprintf(`{"escape": %q}`, token), 20*time.Second))
		if res.Status != contract.StatusCompleted || !strings.Contains(string(res.Data), `"escaped"`) {
			t.Fatalf("%q %s %+v", res.Status, res.Data, res.Err)
		}
		waitFor(t, func() bool { return len(processesWith(token)) == 0 }, "the escapee to be gone")

		token = fmt.Sprintf("escapee-%d-warm", os.Getpid())
		j := job(t, "pokes_the_jail", fmt.Sprintf(`{"escape": %q}`, token), 20*time.Second)
		j.Warm, j.Version = true, "v1"
		if res := mustRun(t, r, j); res.Status != contract.StatusCompleted {
			t.Fatalf("warm: %q %+v", res.Status, res.Err)
		}
		waitFor(t, func() bool { return len(processesWith(token)) == 1 }, "the warm runner's escapee to show (the control)")
		if err := r.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return len(processesWith(token)) == 0 }, "the warm runner's escapee to be gone")
	})
}

// processesWith lists the live processes whose command line holds s.
func processesWith(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(b, []byte(s)) && isLive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TestUsernsIsChosen: a non-root worker gets ContainUserns from auto, from namespaces and from userns
// alike, with the process limit enforced; per-script uids (SCRIPT_RUN_AS) stay refused, as without user
// namespaces. A root worker is refused userns (it makes namespaces without one).
func TestUsernsIsChosen(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		_, err := New(Config{Python: testPython(t), WorkDir: filepath.Join(t.TempDir(), "w"), Containment: ContainUserns, Logger: testLogger(t)})
		if err == nil || !strings.Contains(err.Error(), "non-root worker") {
			t.Errorf("New(userns) as root: %v; want a refusal", err)
		}
	}
	if asNonRoot(t, false) {
		return
	}
	requireUserns(t)
	for _, mode := range []string{ContainAuto, ContainNamespaces, ContainUserns} {
		rec := &messages{}
		r := newTestRunner(t, func(c *Config) { c.Containment, c.Logger = mode, slog.New(rec) })
		if r.Containment() != ContainUserns || !r.PIDNamespace() || !r.ProcessLimit() {
			t.Errorf("%s: containment %q, PID namespace %v, process limit %v; want %q with both", mode, r.Containment(), r.PIDNamespace(), r.ProcessLimit(), ContainUserns)
		}
		if w := rec.warnings(); len(w) != 0 {
			t.Errorf("%s: warnings %v", mode, w)
		}
		_ = r.Shutdown(t.Context())
	}
	_, err := New(Config{Python: testPython(t), WorkDir: filepath.Join(t.TempDir(), "w"), RunAs: &Credential{UID: 12345, GID: 12345}, Logger: testLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "cannot run scripts as uid 12345") {
		t.Errorf("SCRIPT_RUN_AS as a non-root worker: %v; want it refused", err)
	}
}

// TestUsernsRefusedFallsBack: where user namespaces are refused as Docker's default seccomp profile
// refuses them (clone and unshare with CLONE_NEWUSER fail with EPERM, clone3 with ENOSYS; installed here on
// the test's own process, which runs in a process of its own for that), a non-root worker in auto falls
// back to the session containment with one warning that gives the reason, and refuses to start when
// userns or namespaces was asked for.
func TestUsernsRefusedFallsBack(t *testing.T) {
	t.Parallel()
	if asNonRoot(t, true) {
		return
	}
	if err := refuseUserNamespaces(); err != nil {
		t.Fatalf("cannot install the seccomp filter that refuses user namespaces: %v", err)
	}
	control := exec.Command("/bin/true")
	control.SysProcAttr = jailAttr(true)
	control.SysProcAttr.AmbientCaps = nil
	if err := control.Run(); err == nil {
		t.Fatal("control: a user namespace is still made under the filter")
	}
	rec := &messages{}
	r := newTestRunner(t, func(c *Config) { c.Containment, c.Logger = ContainAuto, slog.New(rec) })
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	if r.Containment() != ContainSession {
		t.Errorf("containment %q, want %q", r.Containment(), ContainSession)
	}
	w := rec.warnings()
	if len(w) != 1 || !strings.Contains(w[0], "user namespaces") || !strings.Contains(w[0], "reason=") ||
		!strings.Contains(w[0], "operation not permitted") {
		t.Errorf("warnings %q; want one that names user namespaces and the reason", w)
	}
	if res := mustRun(t, r, job(t, "returns_dict", `{}`, 20*time.Second)); res.Status != contract.StatusCompleted {
		t.Errorf("a run in the fallback: %q %+v", res.Status, res.Err)
	}
	for _, mode := range []string{ContainUserns, ContainNamespaces} {
		_, err := New(Config{Python: testPython(t), WorkDir: filepath.Join(t.TempDir(), "w"), Containment: mode, Logger: testLogger(t)})
		if err == nil || !strings.Contains(err.Error(), "user namespaces") {
			t.Errorf("New(%s): %v; want a refusal that names user namespaces", mode, err)
		}
	}
}

// refuseUserNamespaces installs, on every thread of this process and what it starts, a seccomp filter
// that refuses user namespaces as Docker's default profile does.
func refuseUserNamespaces() error {
	const (
		ldW     = 0x20       // BPF_LD | BPF_W | BPF_ABS (0x00 | 0x00 | 0x20)
		jeqK    = 0x15       // BPF_JMP | BPF_JEQ | BPF_K (0x05 | 0x10 | 0x00)
		jsetK   = 0x45       // BPF_JMP | BPF_JSET | BPF_K (0x05 | 0x40 | 0x00)
		retK    = 0x06       // BPF_RET | BPF_K (0x06 | 0x00)
		allow   = 0x7fff0000 // SECCOMP_RET_ALLOW
		errno   = 0x00050000 // SECCOMP_RET_ERRNO
		clone3  = 435
		setMode = 1 // SECCOMP_SET_MODE_FILTER
		tsync   = 1 // SECCOMP_FILTER_FLAG_TSYNC
	)
	var arch uint32
	var sysSeccomp uintptr
	switch runtime.GOARCH {
	case "amd64":
		arch, sysSeccomp = 0xc000003e, 317
	case "arm64":
		arch, sysSeccomp = 0xc00000b7, 277
	default:
		return fmt.Errorf("no audit arch for %s", runtime.GOARCH)
	}
	type insn struct {
		code   uint16
		jt, jf uint8
		k      uint32
	}
	prog := []insn{
		{ldW, 0, 0, 4},     // seccomp_data.arch
		{jeqK, 0, 4, arch}, // another arch: allowed
		{ldW, 0, 0, 0},     // seccomp_data.nr
		{jeqK, 7, 0, clone3},
		{jeqK, 2, 0, uint32(syscall.SYS_CLONE)},
		{jeqK, 1, 0, uint32(syscall.SYS_UNSHARE)},
		{retK, 0, 0, allow},
		{ldW, 0, 0, 16}, // the low half of args[0]: the flags of clone and unshare
		{jsetK, 1, 0, syscall.CLONE_NEWUSER},
		{retK, 0, 0, allow},
		{retK, 0, 0, errno | uint32(syscall.EPERM)},
		{retK, 0, 0, errno | uint32(syscall.ENOSYS)},
	}
	fprog := struct {
		n      uint16
		filter *insn
	}{uint16(len(prog)), &prog[0]}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if _, _, e := syscall.RawSyscall6(syscall.SYS_PRCTL, jailhelper.PRSetNoNewPrivs, 1, 0, 0, 0, 0); e != 0 {
		return e
	}
	r, _, e := syscall.Syscall(sysSeccomp, setMode, tsync, uintptr(unsafe.Pointer(&fprog)))
	if e != 0 {
		return e
	}
	if r != 0 {
		return fmt.Errorf("thread %d could not take the filter", r)
	}
	return nil
}

// messages records log records as text, for the warning checks.
type messages struct {
	mu   sync.Mutex
	recs []string
}

func (m *messages) Enabled(context.Context, slog.Level) bool { return true }
func (m *messages) WithAttrs([]slog.Attr) slog.Handler       { return m }
func (m *messages) WithGroup(string) slog.Handler            { return m }
func (m *messages) Handle(_ context.Context, rec slog.Record) error {
	s := rec.Level.String() + " " + rec.Message
	rec.Attrs(func(a slog.Attr) bool { s += " " + a.String(); return true })
	m.mu.Lock()
	m.recs = append(m.recs, s)
	m.mu.Unlock()
	return nil
}

func (m *messages) warnings() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var w []string
	for _, s := range m.recs {
		if strings.HasPrefix(s, "WARN ") {
			w = append(w, s)
		}
	}
	return w
}
