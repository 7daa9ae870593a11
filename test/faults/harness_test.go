package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/test/testkit"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/local/stack"
	"github.com/scrapeplatform/platform/shared/auth"
	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/brokertest"
	"github.com/scrapeplatform/platform/shared/proctest"
	"github.com/scrapeplatform/platform/shared/scripttest"
	"github.com/scrapeplatform/platform/shared/testlog"
)

// Secrets the processes get; no script may ever see them.
const (
	secret          = "faults-jwt-secret-faults-jwt-secret-0123"
	awsSecretKey    = "FAULTSawsSecretKeyThatMustNotLeak0000000"
	awsRelativeURI  = "/v2/credentials/faults-task-role-00000000"
	fileSecret      = "FAULTSsecretInTheWorkersCredentialsFile"
	sandboxUID      = 65534
	sandboxIdentity = "65534:65534"
)

// faultScripts are the fixture scripts the fault tests scrape on top of the suites' common ones.
var faultScripts = []string{
	"busy_loop", "escapes_and_sleeps", "fetch", "floods_output", "fork_bomb", "huge_result", "ignores_signals",
	"long_job", "memory_bomb", "pries_runner", "reads_files", "returns_set", "warm_state",
}

// options describe a stack.
type options struct {
	amqpURL    string   // "" = the shared broker at RABBITMQ_URL (with queues of the test's own)
	workers    int      // workers started with the gateway
	noGateway  bool     // start workers only
	env        []string // for every process
	gatewayEnv []string
	workerEnv  []string
}

// env is one running stack.
type env struct {
	t          *testing.T
	amqpURL    string
	queue      string
	topo       broker.Topology
	base       string // a folder other users can traverse: the scripts' user works in it
	scripts    string
	pidDir     string // writable by the scripts' user
	home       string // the worker's HOME, holding a credentials file only the worker's user may read
	gatewayURL string
	gateway    *stack.Process
	out        *proctest.Output
	token      string
	client     *http.Client
	baseEnv    []string
	workerEnv  []string

	mu      sync.Mutex
	workers []*workerProc
}

type workerProc struct {
	id         string
	proc       *stack.Process
	metricsURL string
}

// start brings up a gateway and o.workers workers on a queue of their own.
func start(t *testing.T, o options) *env {
	t.Helper()
	amqpURL := o.amqpURL
	queue := brokertest.Name("faults")
	if amqpURL == "" {
		amqpURL = brokertest.URL(t)
		queue = testkit.Queue(t, amqpURL, "faults")
	}
	topo := broker.NewTopology(queue)
	base := reachableDir(t)
	scripts := filepath.Join(base, "scripts")
	scripttest.Copy(t, scripts, slices.Concat(testkit.Scripts, faultScripts)...)
	pidDir := filepath.Join(base, "pids")
	home := filepath.Join(base, "home")
	for _, d := range []string{pidDir, filepath.Join(home, ".aws")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(pidDir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(home, ".aws", "credentials")
	if err := os.WriteFile(creds, []byte("[default]\naws_secret_access_key = "+fileSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	baseEnv := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"RABBITMQ_URL=" + amqpURL,
		"RABBITMQ_TASK_QUEUE=" + queue,
		"JWT_SECRET=" + secret,
		"AWS_SECRET_ACCESS_KEY=" + awsSecretKey,
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=" + awsRelativeURI,
		"LOG_LEVEL=debug",
	}
	baseEnv = append(baseEnv, o.env...)
	workerEnv := []string{
		"SCRIPT_REPOSITORY_TYPE=local",
		"SCRIPT_REPOSITORY_URL=" + scripts,
		"WORKER_CONCURRENCY=3",
		"SCRIPT_MAX_PROCESSES=64",
		"SCRIPT_MEMORY_LIMIT_MB=256",
	}
	if os.Getuid() == 0 {
		// A root worker runs scripts as another user; its interpreter must be one that user can run.
		workerEnv = append(workerEnv, "SCRIPT_RUN_AS="+sandboxIdentity, "WORKER_PYTHON="+scripttest.SandboxPython(t, sandboxUID, "FAULTS_SANDBOX_PYTHON"))
		// These fixtures report to the host (pid files in the test's folder, host pids from /proc), which a
		// run's private /tmp and /proc under the default namespaces containment would hide; the runner's
		// ns_test.go tests that containment.
		workerEnv = append(workerEnv, "SCRIPT_CONTAINMENT=pidns")
	} else {
		// The same for a non-root worker, which would make the namespaces in user namespaces of its own.
		workerEnv = append(workerEnv, "SCRIPT_CONTAINMENT=session")
	}
	workerEnv = append(workerEnv, o.workerEnv...)

	e := &env{t: t, amqpURL: amqpURL, queue: queue, topo: topo, base: base, scripts: scripts, pidDir: pidDir,
		home: home, out: &proctest.Output{}, baseEnv: baseEnv, workerEnv: workerEnv,
		client: &http.Client{Timeout: 90 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	t.Cleanup(func() {
		e.mu.Lock()
		workers := append([]*workerProc(nil), e.workers...)
		e.mu.Unlock()
		for _, w := range workers {
			_ = w.proc.Stop(40 * time.Second)
		}
		if e.gateway != nil {
			_ = e.gateway.Stop(20 * time.Second)
		}
		e.client.CloseIdleConnections()
		if t.Failed() {
			t.Logf("process output (tail):\n%s", proctest.Tail(e.out.String(), 40000))
		}
	})
	tok, err := auth.IssueHS256([]byte(secret), auth.Claims{Subject: "faults"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	e.token = tok

	if !o.noGateway {
		e.startGateway(t, o.gatewayEnv...)
	}
	for i := 1; i <= o.workers; i++ {
		e.addWorker(t, fmt.Sprintf("worker-%d", i))
	}
	return e
}

func (e *env) startGateway(t *testing.T, extra ...string) {
	t.Helper()
	addr := proctest.FreeAddr(t)
	// These stacks have no job store, so the sync window bounds every scrape (issue 10); a wide one keeps a
	// caller's wait at timeout + SCRAPE_REPLY_GRACE, which these tests measure.
	environ := append(append(append([]string{}, e.baseEnv...), "SCRAPE_SYNC_WAIT=2m"), extra...)
	environ = append(environ, "GATEWAY_ADDR="+addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := stack.StartProcess(context.WithoutCancel(ctx), "gateway", filepath.Join(binDir, "gateway-local"), nil, environ, e.out)
	if err != nil {
		t.Fatal(err)
	}
	e.gateway, e.gatewayURL = p, "http://"+addr
	if err := stack.WaitReady(ctx, p, e.gatewayURL+"/health", 30*time.Second); err != nil {
		t.Fatalf("gateway: %v\n%s", err, proctest.Tail(e.out.String(), 5000))
	}
}

// addWorker starts one more worker and waits until it is healthy.
func (e *env) addWorker(t *testing.T, id string, extra ...string) *workerProc {
	t.Helper()
	addr := proctest.FreeAddr(t)
	environ := append(append([]string{}, e.baseEnv...), e.workerEnv...)
	environ = append(environ, extra...)
	environ = append(environ, "WORKER_ID="+id, "WORKER_METRICS_ADDR="+addr, "WORKER_WORK_DIR="+filepath.Join(e.base, "work-"+id))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := stack.StartProcess(context.WithoutCancel(ctx), id, filepath.Join(binDir, "worker"), nil, environ, e.out)
	if err != nil {
		t.Fatal(err)
	}
	w := &workerProc{id: id, proc: p, metricsURL: "http://" + addr + "/metrics"}
	e.mu.Lock()
	e.workers = append(e.workers, w)
	e.mu.Unlock()
	if err := stack.WaitReady(ctx, p, "http://"+addr+"/healthz", 30*time.Second); err != nil {
		t.Fatalf("%s: %v\n%s", id, err, proctest.Tail(e.out.String(), 5000))
	}
	return w
}

// result is one HTTP answer; err is set when there was none.
type result struct {
	code    int
	body    map[string]any
	raw     string
	header  http.Header
	start   time.Time
	latency time.Duration
	err     error
}

func (r result) status() string {
	if s, ok := r.body["status"].(string); ok {
		return s
	}
	return ""
}

func (r result) errorCode() string {
	if s, ok := r.body["error_code"].(string); ok {
		return s
	}
	return ""
}

// do sends one request. It never fails the test itself, so it may run in any goroutine.
func (e *env) do(method, path, body, token string, header ...string) result {
	req, err := http.NewRequest(method, e.gatewayURL+path, strings.NewReader(body))
	if err != nil {
		return result{err: err}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	r := result{start: time.Now()}
	resp, err := e.client.Do(req)
	if err != nil {
		r.err, r.latency = err, time.Since(r.start)
		return r
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r.latency = time.Since(r.start)
	r.code, r.raw, r.header = resp.StatusCode, string(raw), resp.Header
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// scrape posts one scrape.
func (e *env) scrape(script string, params any, timeout float64) result {
	body := map[string]any{"script_name": script, "parameters": params}
	if timeout > 0 {
		body["timeout"] = timeout
	}
	b, _ := json.Marshal(body)
	return e.do("POST", "/scrape", string(b), e.token)
}

// metric is testkit.Metric for a test: 0 when the endpoint has no such series, a failed test when it cannot
// be read.
func metric(t *testing.T, url, series string) float64 {
	t.Helper()
	v, _, err := testkit.Metric(url, series)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// queueDepth asks the broker for a queue's ready messages without declaring it.
func queueDepth(t *testing.T, url, queue string) int {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatalf("inspect %s: %v", queue, err)
	}
	return q.Messages
}

// stats summarises latencies.
type stats struct {
	n             int
	p50, p99, max time.Duration
}

func summarise(ds []time.Duration) stats {
	if len(ds) == 0 {
		return stats{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return stats{n: len(s), p50: s[len(s)/2], p99: s[(len(s)*99)/100], max: s[len(s)-1]}
}

func ms(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }

// reachableDir returns a fresh folder under the system temp dir that other users can traverse and read
// (the scripts' user reads the scripts and works below it).
func reachableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "faults-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// waitDead waits up to timeout for every pid to be gone and returns those still alive.
func waitDead(pids []int, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		var live []int
		for _, p := range pids {
			if p > 1 && proctest.Alive(p) {
				live = append(live, p)
			}
		}
		if len(live) == 0 || time.Now().After(deadline) {
			return live
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// readPidDir reads every pid the long_job fixture recorded under dir.
func readPidDir(t *testing.T, dir string) (runs int, pids []int) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "run-") || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		runs++
		for _, f := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(f)
			pids = append(pids, n)
		}
	}
	return runs, pids
}

// runsIn counts the runs the sleeper fixture recorded in its started_file (one line each).
func runsIn(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// waitRuns waits until the sleeper fixture recorded at least one run in its started_file; what names
// the task for the failure message.
func waitRuns(t *testing.T, path string, timeout time.Duration, what string) {
	t.Helper()
	for deadline := time.Now().Add(timeout); runsIn(t, path) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never started (nothing in %s after %s)", what, path, timeout)
		}
	}
}

// privateNode starts a private RabbitMQ node for one test (never the machine's shared broker).
func privateNode(t *testing.T) *stack.Node {
	t.Helper()
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		t.Fatal("this fault test starts a private RabbitMQ node and needs rabbitmq-server installed (apt-get install rabbitmq-server; .ci/run does)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", proctest.FreePort(t))
	n, err := stack.StartNode(ctx, stack.BrokerOptions{URL: url, DataDir: t.TempDir(), Logger: testLogger(t)}, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Stop() })
	return n
}

func testLogger(t *testing.T) *slog.Logger { return testlog.New(t, slog.LevelInfo) }
