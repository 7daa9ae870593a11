package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/scripttest"
	"github.com/scrapeplatform/platform/worker/internal/egress"
)

// testUIDs is the range the tests give scripts their own uids from.
var testUIDs = UIDRange{First: 200000, Count: 65536}

// brokerAddr is the broker the hostile fixtures try to reach (CI's RabbitMQ, guest/guest).
const brokerAddr = "127.0.0.1:5672"

// metadataAddr is the cloud metadata service.
const metadataAddr = "169.254.169.254:80"

// requireNamespaces skips a test of the namespaces containment when the test is not root (they need root or
// CAP_SYS_ADMIN; CI runs as root), and fails it when it is root and the kernel cannot make them.
func requireNamespaces(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the namespaces containment needs root (CI runs this as root); skipped, not passed")
	}
	if err := probeJail(scripttest.SandboxPython(t, int(testUIDs.First), "RUNNER_SANDBOX_PYTHON"), &nsCred, false, nil); err != nil {
		t.Fatalf("running as root, yet the kernel made no PID, mount, network and IPC namespaces for a run: %v", err)
	}
}

var nsCred = syscall.Credential{Uid: testUIDs.First, Gid: testUIDs.First, Groups: []uint32{}}

// hostileEnv is what the hostile suites run against: a loopback listener of the test's own (a service of
// the host), an HTTP server the egress proxy may reach, and the proxy.
type hostileEnv struct {
	listener string // host:port of a loopback listener of the test
	site     string // URL of a page only the proxy may fetch
	proxy    *egress.Proxy
}

func newHostileEnv(t *testing.T) hostileEnv {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("hello from the site"))
	}))
	t.Cleanup(site.Close)
	policy, err := egress.ParsePolicy(strings.TrimPrefix(site.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := egress.Start(egress.Config{Policy: policy, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Shutdown(context.Background()) }) // not t.Context(): it is cancelled before cleanups run
	return hostileEnv{listener: ln.Addr().String(), site: site.URL, proxy: proxy}
}

// probes is what the probes_containment fixture reports.
type probes struct {
	UID, GID    int
	Groups      []int
	Procs       map[string]string
	Mounts      map[string]string
	Connect     map[string]string
	AMQP        map[string]map[string]string
	Credentials []string `json:"credentials_found"`
	Fetch       struct {
		Status int
		Body   string
		Error  string
	}
	Signal  string
	Signals map[string]string
}

// checkJailed checks what probes_containment saw in a run with namespaces of its own: only its own
// processes in /proc, tmpfs of its own on /tmp, /var/tmp and /dev/shm, a /proc of its own, no route for the
// three raw connections nor an AMQP login to the broker, no broker credentials, and the egress proxy
// fetching the test site.
func checkJailed(t *testing.T, p probes) {
	t.Helper()
	if len(p.Procs) == 0 || len(p.Procs) > 3 {
		t.Errorf("/proc shows %d processes, want the run's own (1 to 3): %v", len(p.Procs), p.Procs)
	}
	for pid, cmd := range p.Procs {
		if !strings.Contains(cmd, "python") {
			t.Errorf("/proc shows process %s (%q), which is not the run's", pid, cmd)
		}
	}
	for _, m := range []string{"/tmp", "/var/tmp", "/dev/shm"} {
		if p.Mounts[m] != "tmpfs" {
			t.Errorf("%s is %q, want a tmpfs of the run's own", m, p.Mounts[m])
		}
	}
	if p.Mounts["/proc"] != "proc" {
		t.Errorf("/proc is %q", p.Mounts["/proc"])
	}
	for target, got := range p.Connect {
		if got == "connected" || !strings.Contains(got, "Error") {
			t.Errorf("raw connection to %s: %s; want no route", target, got)
		}
	}
	if len(p.Connect) != 3 {
		t.Errorf("connections tried: %v", p.Connect)
	}
	if len(p.Credentials) != 0 {
		t.Errorf("the script found broker credentials: %v", p.Credentials)
	}
	for user, got := range p.AMQP[brokerAddr] {
		if strings.HasPrefix(got, "logged in") || !strings.Contains(got, "Error") {
			t.Errorf("AMQP login as %s: %s; want no route", user, got)
		}
	}
	if p.Fetch.Status != http.StatusOK || p.Fetch.Body != "hello from the site" {
		t.Errorf("fetch through the proxy: %+v", p.Fetch)
	}
}

func runProbes(t *testing.T, r *Runner, j Job) probes {
	t.Helper()
	res := mustRun(t, r, j)
	if res.Status != contract.StatusCompleted {
		t.Fatalf("probes_containment: %q %+v", res.Status, res.Err)
	}
	var p probes
	if err := json.Unmarshal(res.Data, &p); err != nil {
		t.Fatalf("probes_containment: %v: %s", err, res.Data)
	}
	t.Logf("probes: %s", res.Data)
	return p
}

func (e hostileEnv) probeParams() string {
	b, _ := json.Marshal(map[string]any{
		"connect": []string{brokerAddr, e.listener, metadataAddr},
		"amqp":    []string{brokerAddr},
		"fetch":   e.site + "/page",
	})
	return string(b)
}

// namespacedRunner builds a ContainNamespaces runner whose scripts run as uids of testUIDs and reach the
// network through env's proxy only.
func namespacedRunner(t *testing.T, env hostileEnv, edit func(*Config)) *Runner {
	t.Helper()
	r := newTestRunner(t, func(c *Config) {
		c.Containment = ContainNamespaces
		c.UIDRange = &testUIDs
		c.Python = scripttest.SandboxPython(t, int(testUIDs.First), "RUNNER_SANDBOX_PYTHON")
		c.WorkDir = filepath.Join(scripttest.ReachableTempDir(t), "work")
		if env.proxy != nil {
			c.ProxyURL, c.ServeProxy = env.proxy.URL(), env.proxy.Serve
		}
		if edit != nil {
			edit(c)
		}
	})
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) }) // not t.Context(): it is cancelled before cleanups run
	if got := r.Containment(); got != ContainNamespaces {
		t.Fatalf("Containment() = %q, want %q", got, ContainNamespaces)
	}
	return r
}

// TestNamespacesContainTheScript: under ContainNamespaces a hostile script, cold, warm or in a threads
// runner, runs as its own uid of the range with no supplementary groups; its /proc shows only its run's
// processes; its /tmp, /var/tmp and /dev/shm are tmpfs of its own; its raw sockets reach neither the
// broker, nor a loopback service of the host, nor the metadata address, so it logs into the broker with
// nothing; and HTTP through the egress proxy still works.
func TestNamespacesContainTheScript(t *testing.T) {
	requireNamespaces(t)
	t.Parallel()
	env := newHostileEnv(t)
	r := namespacedRunner(t, env, nil)
	for _, mode := range []struct{ warm, threads bool }{{false, false}, {true, false}, {true, true}} {
		t.Run(fmt.Sprintf("warm=%v,threads=%v", mode.warm, mode.threads), func(t *testing.T) {
			j := job(t, "probes_containment", env.probeParams(), 60*time.Second)
			j.Warm, j.Threads, j.Version = mode.warm, mode.threads, "v1"
			p := runProbes(t, r, j)
			want := int(testUIDs.uidFor("probes_containment"))
			if p.UID != want || p.GID != want || len(p.Groups) != 0 {
				t.Errorf("uid %d gid %d groups %v; want %d %d and none", p.UID, p.GID, p.Groups, want, want)
			}
			checkJailed(t, p)
		})
	}
	// The script's own attempts to undo its mounts, directly and from a user namespace it makes (as
	// TestUsernsContainTheScript; a script of its own uid keeps the bounding set, which gives it nothing).
	t.Run("mounts", func(t *testing.T) {
		mark := filepath.Join("/tmp", fmt.Sprintf("mark-ns-%d", os.Getpid()))
		if err := os.WriteFile(mark, []byte("hunter2-in-the-hosts-tmp"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(mark) })
		checkPokes(t, runPokes(t, r, []string{mark}), false)
	})
}

// TestNamespacesKeepTempPrivate: marks one script leaves in /tmp, /var/tmp and /dev/shm are not there for
// another script (nor for a later run of the same one), and do not reach the host's folders; 300 MiB into
// /dev/shm under a 64 MiB memory limit fails (the run's tmpfs holds a quarter of its limit) instead of
// holding memory outside it.
func TestNamespacesKeepTempPrivate(t *testing.T) {
	requireNamespaces(t)
	t.Parallel()
	r := namespacedRunner(t, hostileEnv{}, nil)
	checkTempPrivate(t, r, fmt.Sprintf("ns-test-%d", os.Getpid()), false)
}

// checkTempPrivate runs leaves_temp_files (cold and warm) on r, a runner whose runs have mount namespaces of
// their own: its marks in /tmp, /var/tmp and /dev/shm reach neither the host's folders nor another run
// (looks_for_marks); all three missing for that run when sameUser (one uid for every script, as under
// ContainUserns); and 300 MiB into /dev/shm under a 64 MiB memory limit fail for want of space.
func checkTempPrivate(t *testing.T, r *Runner, name string, sameUser bool) {
	t.Helper()
	for _, warm := range []bool{false, true} {
		writer := job(t, "leaves_temp_files", fmt.Sprintf(`{"name": %q, "shm_mb": 1}`, name), 60*time.Second)
		writer.Warm, writer.Version = warm, "v1"
		res := mustRun(t, r, writer)
		if res.Status != contract.StatusCompleted {
			t.Fatalf("warm=%v writer: %q %+v", warm, res.Status, res.Err)
		}
		for _, d := range []string{"/tmp", "/var/tmp", "/dev/shm"} {
			if _, err := os.Lstat(filepath.Join(d, "mark-"+name)); err == nil {
				t.Errorf("warm=%v: the script's mark reached the host's %s", warm, d)
			}
		}
		// Another script (the fixture under another name: another run) looks for them.
		reader := job(t, "leaves_temp_files", fmt.Sprintf(`{"name": %q, "read": true}`, name), 20*time.Second)
		reader.ScriptName = "looks_for_marks"
		res = mustRun(t, r, reader)
		if res.Status != contract.StatusCompleted || strings.Contains(string(res.Data), "secret of") ||
			(sameUser && strings.Count(string(res.Data), "FileNotFoundError") != 3) {
			t.Errorf("warm=%v: another run saw the marks: %q %s %+v", warm, res.Status, res.Data, res.Err)
		}
	}
	big := job(t, "leaves_temp_files", fmt.Sprintf(`{"name": %q, "shm_mb": 300}`, name+"-big"), 60*time.Second)
	big.MemoryLimitBytes = 64 << 20
	res := mustRun(t, r, big)
	if res.Status != contract.StatusFailed || res.Err == nil || !strings.Contains(res.Err.Message, "No space left on device") {
		t.Fatalf("300 MiB in /dev/shm under a 64 MiB limit: %q %s %+v; want a failure for want of space", res.Status, res.Data, res.Err)
	}
}

// TestScriptsRunAsUIDsOfTheirOwn: with a UID range (and no namespaces: the session containment, as a root
// worker without CAP_SYS_ADMIN would run), two scripts run as two uids of the range, each its own run
// folder's owner, and one cannot signal the other's warm runner.
func TestScriptsRunAsUIDsOfTheirOwn(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("uids per script need a root worker (CI runs this as root); skipped, not passed")
	}
	t.Parallel()
	r := newTestRunner(t, func(c *Config) {
		c.Containment = ContainSession
		c.UIDRange = &testUIDs
		c.Python = scripttest.SandboxPython(t, int(testUIDs.First), "RUNNER_SANDBOX_PYTHON")
		c.WorkDir = filepath.Join(scripttest.ReachableTempDir(t), "work")
	})
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) }) // not t.Context(): it is cancelled before cleanups run
	victim := job(t, "warm_state", `{}`, 20*time.Second)
	victim.Warm, victim.Version = true, "v1"
	res := mustRun(t, r, victim)
	var state struct{ PID int }
	if err := json.Unmarshal(res.Data, &state); err != nil || state.PID == 0 {
		t.Fatalf("warm runner: %s (%v)", res.Data, err)
	}
	p := runProbes(t, r, job(t, "probes_containment", fmt.Sprintf(`{"signal": %d}`, state.PID), 20*time.Second))
	if want := int(testUIDs.uidFor("probes_containment")); p.UID != want || p.GID != want {
		t.Errorf("uid %d gid %d, want %d", p.UID, p.GID, want)
	}
	if testUIDs.uidFor("probes_containment") == testUIDs.uidFor("warm_state") {
		t.Fatal("the two fixtures hash to one uid: the test proves nothing")
	}
	if p.Signal != "PermissionError" {
		t.Errorf("signalling another script's warm runner: %q, want PermissionError", p.Signal)
	}
	if !isLive(state.PID) {
		t.Errorf("the victim %d is gone", state.PID)
	}

	// Marks a live warm runner of one script leaves in the shared /tmp, /var/tmp and /dev/shm are not
	// readable by another script (its own uid; scripts create files 0600).
	name := fmt.Sprintf("uid-test-%d", os.Getpid())
	for _, d := range []string{"/tmp", "/var/tmp", "/dev/shm"} {
		t.Cleanup(func() { _ = os.Remove(filepath.Join(d, "mark-"+name)) })
	}
	t.Cleanup(func() {
		_ = os.RemoveAll(filepath.Join("/tmp", "dir-"+name))
		_ = os.Remove(filepath.Join("/dev/shm", "big-"+name))
	})
	writer := job(t, "leaves_temp_files", fmt.Sprintf(`{"name": %q}`, name), 20*time.Second)
	writer.Warm, writer.Version = true, "v1"
	if res := mustRun(t, r, writer); res.Status != contract.StatusCompleted {
		t.Fatalf("writer: %q %+v", res.Status, res.Err)
	}
	if _, err := os.Stat("/tmp/mark-" + name); err != nil {
		t.Fatalf("the live warm runner's mark is not there, so the test proves nothing: %v", err)
	}
	reader := job(t, "leaves_temp_files", fmt.Sprintf(`{"name": %q, "read": true}`, name), 20*time.Second)
	reader.ScriptName = "looks_for_marks"
	res = mustRun(t, r, reader)
	if res.Status != contract.StatusCompleted || strings.Contains(string(res.Data), "secret of") || !strings.Contains(string(res.Data), "PermissionError") {
		t.Errorf("another script looking for the marks: %q %s %+v; want PermissionError for each", res.Status, res.Data, res.Err)
	}
}

// TestHostileSocketsWithoutNamespaces: where no namespaces can be made (the image on Fargate: a non-root
// worker; here the session containment), a script's raw sockets do reach loopback services and the broker
// (the Security table says so), but it finds no broker credential anywhere: its environment holds none and
// the worker's /proc files are closed to it.
func TestHostileSocketsWithoutNamespaces(t *testing.T) {
	t.Parallel()
	env := newHostileEnv(t)
	r := sameUserRunner(t, ContainSession, sandboxUser, func(c *Config) {
		c.ProxyURL = env.proxy.URL()
	})
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) }) // not t.Context(): it is cancelled before cleanups run
	p := runProbes(t, r, job(t, "probes_containment", env.probeParams(), 60*time.Second))
	if len(p.Credentials) != 0 {
		t.Errorf("the script found broker credentials: %v", p.Credentials)
	}
	if p.Connect[env.listener] != "connected" {
		t.Logf("without namespaces the loopback listener was expected to be reachable: %s", p.Connect[env.listener])
	}
	if p.Fetch.Status != http.StatusOK {
		t.Errorf("fetch through the proxy: %+v", p.Fetch)
	}
	t.Logf("without namespaces: connections %v; AMQP %v", p.Connect, p.AMQP)
}

// jailPokes is what the pokes_the_jail fixture reports.
type jailPokes struct {
	UID, GID     int
	Status       map[string]any
	HomeWritable string `json:"home_writable"`
	Marks        map[string]bool
	Attempts     map[string]any
	Nested       map[string]any
	Escaped      int
}

// checkPokes checks what pokes_the_jail reports: no capability left (the bounding set emptied too in a
// user namespace of the run's own, userns), no_new_privs, every unmount and mount refused, the same
// from a user namespace the script makes itself (where the run's mounts are locked), and no mark seen.
// runPokes runs pokes_the_jail on r, looking for marks, and returns what it reported.
func runPokes(t *testing.T, r *Runner, marks []string) jailPokes {
	t.Helper()
	params, _ := json.Marshal(map[string]any{"marks": marks})
	res := mustRun(t, r, job(t, "pokes_the_jail", string(params), 30*time.Second))
	if res.Status != contract.StatusCompleted {
		t.Fatalf("%q %+v", res.Status, res.Err)
	}
	t.Logf("pokes_the_jail: %s", res.Data)
	var p jailPokes
	if err := json.Unmarshal(res.Data, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func checkPokes(t *testing.T, p jailPokes, userns bool) {
	t.Helper()
	caps := []string{"CapInh", "CapPrm", "CapEff", "CapAmb"}
	if userns {
		caps = append(caps, "CapBnd")
	}
	for _, c := range caps {
		if v, _ := p.Status[c].(string); strings.Trim(v, "0") != "" || v == "" {
			t.Errorf("%s = %q, want none", c, v)
		}
	}
	if p.HomeWritable != "ok" {
		t.Errorf("writing in its run folder: %s", p.HomeWritable)
	}
	if v, _ := p.Status["NoNewPrivs"].(string); v != "1" {
		t.Errorf("NoNewPrivs = %q, want 1", v)
	}
	for what, got := range p.Attempts {
		if what != "marks" && got == "ok" {
			t.Errorf("%s: ok; want it refused", what)
		}
	}
	if p.Nested["unshare"] != "ok" {
		// Not a failure of the containment, but then the nested attempts below prove nothing.
		t.Errorf("the script could not make a user namespace of its own (%v), so the locked mounts were not tried", p.Nested["unshare"])
	}
	for _, what := range []string{"umount /tmp", "umount -l /tmp", "umount -l /proc", "mount proc"} {
		if got := p.Nested[what]; got == "ok" || got == nil {
			t.Errorf("in a user namespace of the script's own: %s: %v; want it refused", what, got)
		}
	}
	if got := p.Nested["umount -l /tmp again"]; got == "ok" {
		t.Errorf("in a user namespace of the script's own: the run's /tmp was unmounted once the script's own tmpfs was gone")
	}
	for _, marks := range []any{p.Marks, p.Attempts["marks"], p.Nested["marks"]} {
		b, _ := json.Marshal(marks)
		if strings.Contains(string(b), "true") {
			t.Errorf("a hidden file was seen: %s", b)
		}
	}
}
