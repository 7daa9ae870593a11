// Package lambda runs the gateway's real Lambda entry point — the bootstrap binary that `make lambda` builds
// for provided.al2023 — under the AWS Lambda runtime interface emulator, with API Gateway v2 events, a real
// RabbitMQ and a real worker process.
package lambda

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/local/stack"
	"github.com/scrapeplatform/platform/shared/proctest"
	"github.com/scrapeplatform/platform/shared/s3test"
	"github.com/scrapeplatform/platform/shared/scripttest"
	"github.com/scrapeplatform/platform/test/testkit"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := testkit.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// build compiles a main package of a module into dir.
func build(t *testing.T, dir, module, pkg, out string, env ...string) string {
	t.Helper()
	path := filepath.Join(dir, out)
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", path, pkg)
	cmd.Dir = filepath.Join(repoRoot(t), module)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return path
}

func rie(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("AWS_LAMBDA_RIE"); p != "" {
		return p
	}
	p := filepath.Join(repoRoot(t), ".tools", "bin", "aws-lambda-rie")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("this test needs the Lambda runtime interface emulator at %s (make rie installs it) or $AWS_LAMBDA_RIE", p)
	}
	return p
}

// event loads an API Gateway v2 fixture and sets its body.
func event(t *testing.T, fixture, body string) []byte {
	t.Helper()
	return eventWith(t, fixture, body, nil)
}

// eventWith is event with more request headers (API Gateway v2 lower-cases their names).
func eventWith(t *testing.T, fixture, body string, headers map[string]string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "functions", "gateway", "testdata", fixture))
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	if body != "" {
		ev["body"], ev["isBase64Encoded"] = body, false
	}
	if len(headers) > 0 {
		h, _ := ev["headers"].(map[string]any)
		if h == nil {
			h = map[string]any{}
		}
		for k, v := range headers {
			h[strings.ToLower(k)] = v
		}
		ev["headers"] = h
	}
	b, _ := json.Marshal(ev)
	return b
}

type proxyResponse struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}

// header returns the response header name, whatever the case of its key.
func (pr proxyResponse) header(name string) string {
	for k, v := range pr.Headers {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

// invoke sends one event to the emulator and decodes the API Gateway proxy response and its JSON body.
func invoke(t *testing.T, addr string, ev []byte) (proxyResponse, map[string]any) {
	t.Helper()
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Post("http://"+addr+"/2015-03-31/functions/function/invocations", "application/json", bytes.NewReader(ev))
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var pr proxyResponse
	if err := json.Unmarshal(raw, &pr); err != nil || pr.StatusCode == 0 {
		t.Fatalf("emulator answered %d %q, not an API Gateway proxy response", resp.StatusCode, raw)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(pr.Body), &body); err != nil {
		t.Fatalf("proxy response body is not JSON: %q", pr.Body)
	}
	return pr, body
}

func TestBootstrapUnderRuntimeEmulator(t *testing.T) {
	emulator := rie(t) // before anything starts: without it there is nothing to test
	bin := t.TempDir()
	bootstrap := build(t, bin, "functions", "./cmd/gateway", "bootstrap", "CGO_ENABLED=0")
	worker := build(t, bin, "worker", "./cmd/worker", "worker")
	out := &proctest.Output{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("process output:\n%s", out.String())
		}
	})

	// A private broker of the test's own, so restarting it disturbs nothing else on this machine.
	amqpPort := proctest.FreePort(t)
	brokerURL := fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", amqpPort)
	dataDir := filepath.Join(t.TempDir(), "rabbitmq")
	startBroker := func() func() error {
		t.Helper()
		// Hang guards only: a node's boot has taken well over half a minute on a loaded CI machine (the
		// "private broker up in" and "broker restarted in" figures below).
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
		defer cancel()
		stop, err := stack.EnsureBrokerWith(ctx, stack.BrokerOptions{URL: brokerURL, DataDir: dataDir, ReadyTimeout: 3 * time.Minute,
			Logger: slog.New(slog.NewTextHandler(out, nil))})
		if err != nil {
			t.Fatalf("start private broker: %v", err)
		}
		return stop
	}
	t0 := time.Now()
	stopBroker := startBroker()
	t.Logf("private broker up in %s", time.Since(t0).Round(time.Millisecond))
	t.Cleanup(func() {
		t0 := time.Now()
		_ = stopBroker()
		t.Logf("broker stopped in %s", time.Since(t0).Round(time.Millisecond))
	})

	queue := "lambda-test"
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "RABBITMQ_URL=" + brokerURL, "RABBITMQ_TASK_QUEUE=" + queue}
	// The job store, as the stack's results bucket is in AWS: a real versitygw.
	s3 := s3test.Start(t)
	s3.CreateBucket(t, "lambda-jobs", false)
	base = append(base, "JOB_STORE_BUCKET=lambda-jobs", "S3_ENDPOINT_URL="+s3.Endpoint, "S3_REGION="+s3.Region,
		"S3_ACCESS_KEY="+s3.AccessKey, "S3_SECRET_KEY="+s3.SecretKey)
	ctx := context.Background()
	workerMetrics := fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))
	workerEnv := append(append([]string{}, base...), "WORKER_ID=lambda-test-worker",
		"WORKER_METRICS_ADDR="+workerMetrics,
		"SCRIPT_REPOSITORY_URL="+scripttest.Dir(t, testkit.Scripts...),
		"WORKER_WORK_DIR="+t.TempDir(), "WORKER_CONCURRENCY=2")
	w, err := stack.StartProcess(ctx, "worker", worker, nil, workerEnv, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		t0 := time.Now()
		_ = w.Stop(30 * time.Second)
		t.Logf("worker stopped in %s", time.Since(t0).Round(time.Millisecond))
	})

	// The worker consumes before the first invocation, so the cold start measures the function, not the worker.
	workerConnects := waitWorkerConnected(t, workerMetrics, nil)

	addr := fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))
	rieEnv := append(append([]string{}, base...), "STAGE=test", "AWS_LAMBDA_FUNCTION_TIMEOUT=30")
	started := time.Now()
	emu, err := stack.StartProcess(ctx, "rie", emulator, []string{
		"--runtime-interface-emulator-address", addr,
		"--runtime-api-address", fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t)),
		bootstrap,
	}, rieEnv, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		t0 := time.Now()
		_ = emu.Stop(10 * time.Second)
		t.Logf("emulator stopped in %s", time.Since(t0).Round(time.Millisecond))
	})
	waitListening(t, addr)

	// First invocation: cold start (the emulator starts bootstrap on demand), broker dial, a real scrape.
	scrape := event(t, "apigw-v2-scrape-jwt.json", `{"script_name":"echo","parameters":{"q":"cold"},"timeout":10}`)
	pr, body := invoke(t, addr, scrape)
	coldStart := time.Since(started)
	if pr.StatusCode != 200 || body["status"] != "completed" || body["worker_id"] != "lambda-test-worker" {
		t.Fatalf("first scrape: %d %v", pr.StatusCode, body)
	}
	if echo := body["data"].(map[string]any)["echo"].(map[string]any); echo["q"] != "cold" {
		t.Fatalf("data %v", body["data"])
	}
	st, _ := os.Stat(bootstrap)
	t.Logf("cold start (emulator start to first answered scrape, broker dial included): %s; bootstrap size %.1f MiB (%s/%s)",
		coldStart.Round(time.Millisecond), float64(st.Size())/(1<<20), goEnv(t, "GOOS"), goEnv(t, "GOARCH"))
	warmStart := time.Now()
	pr, body = invoke(t, addr, scrape)
	if pr.StatusCode != 200 || body["status"] != "completed" {
		t.Fatalf("second scrape: %d %v", pr.StatusCode, body)
	}
	t.Logf("warm invocation: %s", time.Since(warmStart).Round(time.Millisecond))

	// Auth comes from the authorizer context: a forged bearer header without it is refused.
	pr, body = invoke(t, addr, event(t, "apigw-v2-scrape-noauth.json", ""))
	if pr.StatusCode != 401 || body["error_code"] != "unauthorized" {
		t.Fatalf("no authorizer context: %d %v", pr.StatusCode, body)
	}
	// Prefer: respond-async through an API Gateway v2 event: 202 with the job's Location, at once; the job
	// is then readable through GET /jobs/{id}.
	pr, body = invoke(t, addr, eventWith(t, "apigw-v2-scrape-jwt.json", `{"script_name":"echo","parameters":{"q":"async"},"timeout":60}`,
		map[string]string{"Prefer": "respond-async"}))
	id, _ := body["request_id"].(string)
	if pr.StatusCode != 202 || pr.header("Location") != "/jobs/"+id || pr.header("Preference-Applied") != "respond-async" || body["created_at"] == nil {
		t.Fatalf("respond-async: %d %v %v", pr.StatusCode, pr.Headers, body)
	}
	get := eventWith(t, "apigw-v2-scrape-jwt.json", "", nil)
	var ev map[string]any
	_ = json.Unmarshal(get, &ev)
	ev["rawPath"], ev["body"] = "/jobs/"+id, ""
	ev["routeKey"] = "GET /jobs/{id}"
	if rc, ok := ev["requestContext"].(map[string]any); ok {
		if h, ok := rc["http"].(map[string]any); ok {
			h["method"], h["path"] = "GET", "/jobs/"+id
		}
	}
	get, _ = json.Marshal(ev)
	if pr, body = invoke(t, addr, get); pr.StatusCode != 200 || body["request_id"] != id {
		t.Fatalf("GET /jobs/%s: %d %v", id, pr.StatusCode, body)
	}
	pr, body = invoke(t, addr, event(t, "apigw-v2-health.json", ""))
	if pr.StatusCode != 200 || body["status"] != "healthy" {
		t.Fatalf("health: %d %v", pr.StatusCode, body)
	}

	// The broker restarts between two invocations: the next invocation must redial and succeed.
	t0 = time.Now()
	if err := stopBroker(); err != nil {
		t.Fatalf("stop broker: %v", err)
	}
	t.Logf("broker stopped in %s", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	stopBroker = startBroker()
	t.Logf("broker restarted in %s", time.Since(t0).Round(time.Millisecond))
	// The worker redials with a backoff of up to 10 s; what is under test is the function's redial, so the
	// invocation waits until the worker has new connections (and then allows the longest timeout, 25 s).
	t0 = time.Now()
	waitWorkerConnected(t, workerMetrics, workerConnects)
	t.Logf("worker reconnected %s after the broker restart", time.Since(t0).Round(time.Millisecond))
	restarted := time.Now()
	pr, body = invoke(t, addr, event(t, "apigw-v2-scrape-jwt.json", `{"script_name":"echo","parameters":{"q":"after restart"},"timeout":25}`))
	if pr.StatusCode != 200 || body["status"] != "completed" {
		t.Fatalf("scrape after broker restart: %d %v", pr.StatusCode, body)
	}
	t.Logf("first invocation after the broker restart answered in %s", time.Since(restarted).Round(time.Millisecond))

	// Metrics left the function as CloudWatch EMF lines. The bootstrap wrote them before it answered, but they
	// reach this test through the emulator's output and a copying goroutine, so they may trail the answer.
	isScrapeEMF := func(line string) bool {
		return strings.Contains(line, `"CloudWatchMetrics"`) && strings.Contains(line, `"Scrapes":1`)
	}
	if got := out.WaitCount(isScrapeEMF, 3, 30*time.Second); got < 3 {
		t.Fatalf("want an EMF line per scrape answered 200 (3), found %d", got)
	}
}

// workerConnections are the worker's AMQP connections (consume, publish) as its /metrics labels them.
var workerConnections = []string{"consume", "publish"}

// waitWorkerConnected polls the worker's /metrics at addr until each of its broker connections is up
// (scraping_broker_connected 1) and, when before is given, has been established anew since (its
// scraping_broker_connects_total passed the count in before). It returns the connection counts.
func waitWorkerConnected(t *testing.T, addr string, before map[string]float64) map[string]float64 {
	t.Helper()
	url := "http://" + addr + "/metrics"
	end := time.Now().Add(60 * time.Second)
	for {
		connects, last := map[string]float64{}, ""
		for _, c := range workerConnections {
			label := `{connection="` + c + `"}`
			up, _, err := testkit.Metric(url, "scraping_broker_connected"+label)
			if err == nil {
				connects[c], _, err = testkit.Metric(url, "scraping_broker_connects_total"+label)
			}
			switch {
			case err != nil:
				last = err.Error()
			case up != 1 || connects[c] <= before[c]:
				last = fmt.Sprintf("%s: connected %v, connects %v (before %v)", c, up, connects[c], before[c])
			}
		}
		if last == "" {
			return connects
		}
		if time.Now().After(end) {
			t.Fatalf("the worker's broker connections are not up: %s", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	end := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(end) {
			t.Fatalf("emulator not listening on %s", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func goEnv(t *testing.T, k string) string {
	out, err := exec.Command("go", "env", k).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
