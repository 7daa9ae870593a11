//go:build containers

package docker

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/scrapeplatform/platform/shared/scripttest"
	"github.com/scrapeplatform/platform/shared/wheeltest"
	"github.com/scrapeplatform/platform/test/testkit"
)

// The worker image as Fargate runs it: Docker's default capabilities (Fargate adds none but SYS_PTRACE, which
// this does not add), no privilege escalation, the image's user, a read-only root filesystem with a tmpfs for
// the work dir (the worker writes nothing else), and the task's memory limit. It scrapes through a gateway
// container and a RabbitMQ container: a plain script, one with requirements installed from local wheels, and
// hostile fixtures; the test logs the table of what containment holds there.
func TestWorkerAsFargateRunsIt(t *testing.T) {
	nw := newNetwork(t)
	startBroker(t, nw, "rabbitmq")
	const amqpURL = "amqp://guest:guest@rabbitmq:5672/"
	gateway := startGateway(t, nw, amqpURL)

	scripts := scripttest.Dir(t, "echo", "envdump", "dep_v1", "fork_bomb", "escapes_and_sleeps", "memory_bomb")
	wheels := scripttest.ReachableTempDir(t)
	wheeltest.Build(t, wheels, "conflictpkg", "1.0", "")
	// The image's user (not root) reads the scripts and wheels through the bind mounts.
	readableByAll(t, scripts, wheels)

	worker := fargateWorker(t, nw, scripts, wheels, nil, wait.ForLog("worker started"))
	// As the image declares: the worker is PID 1 (the entrypoint execs it) and runs as uid 10001, with no
	// effective capabilities (Docker drops them all for a non-root user).
	st := procStatus(t, worker, "1")
	uid := strings.Fields(st["Uid"])
	if len(uid) == 0 || uid[0] != "10001" {
		t.Errorf("the worker runs as uid %q, want the image's 10001", st["Uid"])
	}
	capEff := st["CapEff"]
	if code, out := execOut(t, worker, "sh", "-c", "touch /usr/local/bin/x 2>&1; echo $?"); !strings.HasSuffix(out, "1") {
		t.Errorf("the root filesystem is writable (exit %d: %s)", code, out)
	}

	// A plain script, through the gateway.
	r := scrape(t, gateway, "echo", map[string]any{"n": 1}, 20)
	if r.code != 200 || r.Status != "completed" || !strings.Contains(string(r.Data), `"n":1`) {
		t.Fatalf("echo: %d %s %s %s", r.code, r.Status, r.Code, r.Data)
	}

	// A script with requirements: pip builds its environment on the tmpfs from the mounted wheels.
	var dep struct{ Version, Python string }
	testkit.RetryWhileInstalling(t, "dep_v1", func() (int, string) {
		r = scrape(t, gateway, "dep_v1", nil, 25)
		return r.code, r.Code
	})
	if r.code != 200 || r.Status != "completed" {
		t.Fatalf("dep_v1: %d %s %s %s", r.code, r.Status, r.Code, r.Error)
	}
	mustJSON(t, r.Data, &dep)
	if dep.Version != "1.0" || !strings.HasPrefix(dep.Python, "/tmp/") {
		t.Errorf("dep_v1 ran with conflictpkg %q from %q, want 1.0 from an environment under /tmp", dep.Version, dep.Python)
	}

	// The script's environment holds none of the worker's.
	var env struct{ Environ map[string]string }
	r = scrape(t, gateway, "envdump", nil, 20)
	mustJSON(t, r.Data, &env)
	leaked := []string{}
	for k := range env.Environ {
		if strings.HasPrefix(k, "AWS_") || strings.HasPrefix(k, "RABBITMQ") || strings.HasPrefix(k, "PIP_") {
			leaked = append(leaked, k)
		}
	}
	if len(leaked) > 0 {
		t.Errorf("the script saw the worker's variables %v", leaked)
	}
	// /proc/1/environ, as the script's user (the same uid): zeroed, or unreadable (non-dumpable).
	_, environ := execOut(t, worker, "sh", "-c", "tr '\\0' '\\n' </proc/1/environ 2>&1 | grep -c secret-path || true")
	environHidden := environ == "0" || strings.Contains(environ, "denied")
	if !environHidden {
		t.Errorf("/proc/1/environ shows the worker's secret to its user: %q", environ)
	}

	// A script that leaves its session and outlives its timeout: nothing it started may remain.
	escaped := escapeeLeft(t, gateway, worker)

	// A fork bomb: RLIMIT_NPROC (SCRIPT_MAX_PROCESSES) applies, the image's user is not root.
	forkBombStopped := runForkBomb(t, gateway)
	// A memory bomb: RLIMIT_AS (SCRIPT_MEMORY_LIMIT_MB) stops it before the container's limit.
	r = scrape(t, gateway, "memory_bomb", nil, 20)
	memoryBombStopped := r.code == 200 && r.Status == "failed" && strings.Contains(r.raw, "MemoryError")
	if !memoryBombStopped {
		t.Errorf("memory_bomb: %d %s %s: want failed by MemoryError (RLIMIT_AS): %s", r.code, r.Status, r.Code, truncate(r.raw, 400))
	}
	// The worker survived all of it and still answers.
	if r := scrape(t, gateway, "echo", map[string]any{"n": 2}, 20); r.Status != "completed" {
		t.Errorf("echo after the hostile scripts: %s %s", r.Status, r.Code)
	}
	st = procStatus(t, worker, "1")
	if st["Name"] != "worker" {
		t.Errorf("PID 1 is %q after the hostile scripts, want the worker", st["Name"])
	}

	// The stronger modes, asked for explicitly: the worker refuses to start when they cannot hold.
	pidns := "NO: SCRIPT_CONTAINMENT=pidns refused (no CAP_SYS_ADMIN); auto runs session"
	if !refuses(t, nw, scripts, wheels, map[string]string{"SCRIPT_CONTAINMENT": "pidns"}, "needs a PID namespace") {
		pidns = "yes?: SCRIPT_CONTAINMENT=pidns was not refused"
	}
	runAs := "NO: SCRIPT_RUN_AS=10002 refused (a non-root worker has no CAP_SETUID)"
	if !refuses(t, nw, scripts, wheels, map[string]string{"SCRIPT_RUN_AS": "10002"}, "cannot run scripts as uid") {
		runAs = "yes?: SCRIPT_RUN_AS was not refused"
	}
	t.Logf("containment in the worker container (user %s, CapEff %s, read-only root, %d MiB):\n%s", uid[0], capEff, memoryLimit>>20,
		strings.Join([]string{
			fmtRow("protection", "holds"),
			fmtRow("---", "---"),
			fmtRow("runs as the image's user", "yes: uid "+uid[0]),
			fmtRow("effective capabilities", capEff),
			fmtRow("read-only root filesystem, work dir on tmpfs", "yes (venvs and runs under /tmp)"),
			fmtRow("PID namespace per run", pidns),
			fmtRow("run as another uid (SCRIPT_RUN_AS)", runAs),
			fmtRow("nothing outlives a run (escapes_and_sleeps)", yes(escaped == "")),
			fmtRow("process limit (fork_bomb, RLIMIT_NPROC)", yes(forkBombStopped)),
			fmtRow("memory limit (memory_bomb, RLIMIT_AS)", yes(memoryBombStopped)),
			fmtRow("no worker secrets in the script's environment", yes(len(leaked) == 0)),
			fmtRow("/proc/1/environ hidden from the same user", yes(environHidden)),
			fmtRow("worker survives and answers", yes(st["Name"] == "worker")),
		}, "\n"))
}

// What the infra stack runs on Fargate: the worker image as root with a uid per script (SCRIPT_UID_RANGE, as
// compose does), under the same Fargate-like settings. Docker's default capabilities keep CAP_SETUID and
// CAP_SETGID (so the per-script uids hold) but not CAP_SYS_ADMIN (so no namespaces: the session mode). The
// worker logs into the broker as a user of its own, which the script must not find.
func TestRootWorkerAsFargateRunsIt(t *testing.T) {
	nw := newNetwork(t)
	broker := startBroker(t, nw, "rabbitmq")
	for _, cmd := range [][]string{
		{"rabbitmqctl", "add_user", "scrape-worker", "worker-secret-password"},
		{"rabbitmqctl", "set_permissions", "-p", "/", "scrape-worker", ".*", ".*", ".*"},
	} {
		if code, out := execOut(t, broker, cmd...); code != 0 {
			t.Fatalf("%v: %d %s", cmd, code, out)
		}
	}
	gateway := startGateway(t, nw, "amqp://guest:guest@rabbitmq:5672/")
	scripts := scripttest.Dir(t, "echo", "probes_containment", "escapes_and_sleeps", "fork_bomb", "dep_v1")
	wheels := scripttest.ReachableTempDir(t)
	wheeltest.Build(t, wheels, "conflictpkg", "1.0", "")
	// The scripts' uids read the scripts and wheels through the bind mounts.
	readableByAll(t, scripts, wheels)
	worker := fargateWorker(t, nw, scripts, wheels, map[string]string{
		"RABBITMQ_URL":     "amqp://scrape-worker:worker-secret-password@rabbitmq:5672/",
		"SCRIPT_UID_RANGE": "200000-265535",
	}, wait.ForLog("worker started"), testcontainers.WithConfigModifier(func(c *container.Config) { c.User = "0:0" }))
	log := containerLog(worker)
	st := procStatus(t, worker, "1")
	if uid := strings.Fields(st["Uid"]); len(uid) == 0 || uid[0] != "0" {
		t.Fatalf("the worker runs as uid %q, want 0", st["Uid"])
	}
	session := strings.Contains(log, `"containment":"session"`)
	if !session {
		t.Errorf("a root worker without CAP_SYS_ADMIN did not settle on the session mode: %s", truncate(log, 1500))
	}

	var probe struct {
		UID              int               `json:"uid"`
		Connect          map[string]string `json:"connect"`
		CredentialsFound []string          `json:"credentials_found"`
		Signal           string            `json:"signal"`
	}
	r := scrape(t, gateway, "probes_containment", map[string]any{"connect": []string{"rabbitmq:5672"}, "amqp": []string{"rabbitmq:5672"}, "signal": "1"}, 30)
	if r.code != 200 || r.Status != "completed" {
		t.Fatalf("probes_containment: %d %s %s %s", r.code, r.Status, r.Code, r.Error)
	}
	mustJSON(t, r.Data, &probe)
	ownUID := probe.UID >= 200000 && probe.UID <= 265535
	if !ownUID {
		t.Errorf("the script ran as uid %d, want one of SCRIPT_UID_RANGE", probe.UID)
	}
	credsHidden := !slices.Contains(probe.CredentialsFound, "scrape-worker")
	if !credsHidden {
		t.Errorf("the script found the worker's broker credentials: %v", probe.CredentialsFound)
	}
	signalRefused := probe.Signal == "PermissionError"
	if !signalRefused {
		t.Errorf("the script may signal the worker (PID 1): %q", probe.Signal)
	}
	// A script with requirements: the root worker builds the environment, the script's uid runs it.
	var dep struct{ Version, Python string }
	testkit.RetryWhileInstalling(t, "dep_v1", func() (int, string) {
		r = scrape(t, gateway, "dep_v1", nil, 25)
		return r.code, r.Code
	})
	depRuns := r.code == 200 && r.Status == "completed"
	if depRuns {
		mustJSON(t, r.Data, &dep)
		depRuns = dep.Version == "1.0"
	}
	if !depRuns {
		t.Errorf("dep_v1 under a script uid: %d %s %s %s (conflictpkg %q)", r.code, r.Status, r.Code, r.Error, dep.Version)
	}
	escaped := escapeeLeft(t, gateway, worker)
	forkBombStopped := runForkBomb(t, gateway)
	if r := scrape(t, gateway, "echo", map[string]any{"n": 3}, 20); r.Status != "completed" {
		t.Errorf("echo after the hostile scripts: %s %s", r.Status, r.Code)
	}
	t.Logf("containment in the worker container as root with SCRIPT_UID_RANGE (CapEff %s, read-only root, no-new-privileges):\n%s", st["CapEff"],
		strings.Join([]string{
			fmtRow("protection", "holds"),
			fmtRow("---", "---"),
			fmtRow("containment mode", map[bool]string{true: "session (no CAP_SYS_ADMIN: no namespaces)", false: "NOT session"}[session]),
			fmtRow("scripts run as a uid of their own", fmt.Sprintf("%s (uid %d)", yes(ownUID), probe.UID)),
			fmtRow("a script with requirements (environment built by the worker, run by the script's uid)", yes(depRuns)),
			fmtRow("the worker's broker credentials hidden from the script", yes(credsHidden)),
			fmtRow("the script cannot signal the worker", yes(signalRefused)),
			fmtRow("a raw socket to the broker", probe.Connect["rabbitmq:5672"]),
			fmtRow("nothing outlives a run (escapes_and_sleeps)", yes(escaped == "")),
			fmtRow("process limit (fork_bomb, RLIMIT_NPROC per script uid)", yes(forkBombStopped)),
		}, "\n"))
}

// memoryLimit is the worker task's memory (the infra stack's default: 1 GiB).
const memoryLimit = 1 << 30

// fargateWorker starts the worker image as Fargate runs it, with the scripts and wheels folders mounted,
// extra settings in env, and waits with ready.
func fargateWorker(t *testing.T, nw *testcontainers.DockerNetwork, scripts, wheels string, env map[string]string, ready wait.Strategy, extra ...testcontainers.ContainerCustomizer) *testcontainers.DockerContainer {
	t.Helper()
	settings := map[string]string{
		"RABBITMQ_URL":           "amqp://guest:guest@rabbitmq:5672/",
		"SCRIPT_REPOSITORY_TYPE": "local",
		"SCRIPT_REPOSITORY_URL":  "/scripts",
		"WORKER_CONCURRENCY":     "2",
		"WORKER_ID":              "fargate-like",
		"LOG_LEVEL":              "info",
		"SCRIPT_MEMORY_LIMIT_MB": "256",
		"SCRIPT_MAX_PROCESSES":   "64",
		"PIP_NO_INDEX":           "1",
		"PIP_FIND_LINKS":         "/wheels",
		// A secret the scripts must not see.
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/secret-path",
	}
	for k, v := range env {
		settings[k] = v
	}
	return run(t, workerImage, append([]testcontainers.ContainerCustomizer{
		network.WithNetwork(nil, nw),
		testcontainers.WithEnv(settings),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.ReadonlyRootfs = true
			hc.Tmpfs = map[string]string{"/tmp": "rw,nosuid,nodev,exec,size=512m,mode=1777"}
			hc.Memory = memoryLimit
			hc.MemorySwap = memoryLimit
			hc.SecurityOpt = []string{"no-new-privileges"}
			hc.Binds = []string{scripts + ":/scripts:ro", wheels + ":/wheels:ro"}
		}),
		testcontainers.WithWaitStrategyAndDeadline(2*time.Minute, ready),
	}, extra...)...)
}

// refuses starts the worker with env and reports whether it exits at start with a log holding want.
func refuses(t *testing.T, nw *testcontainers.DockerNetwork, scripts, wheels string, env map[string]string, want string) bool {
	t.Helper()
	c := fargateWorker(t, nw, scripts, wheels, env, wait.ForExit())
	log := containerLog(c)
	t.Logf("worker with %v: %s", env, truncate(log[max(0, strings.Index(log, "runner:")):], 300))
	return strings.Contains(log, want)
}

// yes is a table cell for a probe's outcome.
func yes(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

// readableByAll makes every file in dirs 0644 and every folder 0755, for users other than the test's
// (the image's user, the scripts' uids) reading them through bind mounts.
func readableByAll(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			mode := os.FileMode(0o644)
			if e.IsDir() {
				mode = 0o755
			}
			return os.Chmod(p, mode)
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// escapeeLeft runs escapes_and_sleeps (a sleep in a new session that ignores SIGTERM and outlives the 3 s
// timeout), wants the timeout reply, and returns the pids of sleeps still running in the worker container
// once they had 10 s to die ("" when none is left).
func escapeeLeft(t *testing.T, gateway string, worker *testcontainers.DockerContainer) string {
	t.Helper()
	r := scrape(t, gateway, "escapes_and_sleeps", map[string]any{"pid_file": "/tmp/escape.pid"}, 3)
	if r.Status != "timeout" {
		t.Errorf("escapes_and_sleeps: status %q (%s), want timeout", r.Status, r.Code)
	}
	escaped := ""
	waitFor(t, "the escaped sleep to die", 10*time.Second, func() bool {
		_, escaped = execOut(t, worker, "sh", "-c", "for p in /proc/[0-9]*; do [ \"$(cat $p/comm 2>/dev/null)\" = sleep ] && echo ${p#/proc/}; done; true")
		return escaped == ""
	})
	return escaped
}

// runForkBomb runs fork_bomb and reports whether the process limit (RLIMIT_NPROC) stopped it. The
// fixture refuses to run without a process limit; a failure with BlockingIOError is the limit's.
func runForkBomb(t *testing.T, gateway string) bool {
	t.Helper()
	r := scrape(t, gateway, "fork_bomb", map[string]any{"pid_file": "/tmp/fork.pid"}, 5)
	stopped := r.code == 200 && r.Status == "failed" && strings.Contains(r.raw, "BlockingIOError")
	if !stopped {
		t.Errorf("fork_bomb: %d %s %s: want failed by BlockingIOError (RLIMIT_NPROC): %s", r.code, r.Status, r.Code, truncate(r.raw, 400))
	}
	return stopped
}
