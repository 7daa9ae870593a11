package observability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/local/stack"
	"github.com/scrapeplatform/platform/shared/auth"
	"github.com/scrapeplatform/platform/shared/brokertest"
	"github.com/scrapeplatform/platform/shared/proctest"
	"github.com/scrapeplatform/platform/shared/scripttest"
	"github.com/scrapeplatform/platform/shared/wheeltest"
	"github.com/scrapeplatform/platform/test/rabbitmqtest"
	"github.com/scrapeplatform/platform/test/testkit"
)

const (
	jwtSecret = "observability-secret-observability-0123"
	// interval is the test Prometheus's scrape and rule evaluation interval.
	interval = time.Second
	// testFor replaces every alert's `for:`: long enough to go through pending, short enough to wait for.
	testFor = "2s"
	// alertTimeout bounds the wait for one provoked alert to fire.
	alertTimeout = 45 * time.Second
	// maxTimeout is the largest scrape timeout the gateway accepts (SCRAPE_MAX_TIMEOUT, 25 s by default,
	// which the stack keeps): an environment build on a loaded machine gets all of it.
	maxTimeout = 25
	// dashboardSettle bounds how long a panel query may take to return data: RabbitMQ refreshes its
	// per-queue metrics every ~5 s, and Prometheus sees them at its next scrape.
	dashboardSettle = 30 * time.Second
)

// TestDashboardsAndAlertsAgainstPrometheus is the proof that the dashboards and alerts work: the real
// processes, the real broker and its rabbitmq_prometheus endpoint, a real Prometheus loading the real rule
// file (only `for:` shortened), traffic, then every panel query evaluated and every alert provoked.
func TestDashboardsAndAlertsAgainstPrometheus(t *testing.T) {
	rules, rulesDoc := loadRules(t)
	brk := rabbitmqtest.Get(t)
	s := startStack(t, brk.URL, 2)
	promDir := t.TempDir()
	testRules := writeRulesWithFor(t, rulesDoc, promDir, testFor)
	promtool(t, "rules", testRules)

	// The job and webhook series, fed as one more worker and gateway target (synthetic_test.go).
	synth := startSyntheticJobs(t)
	cfg := stack.PrometheusConfig{
		ScrapeInterval: interval,
		Gateways:       []string{hostPort(s.gatewayURL), hostPort(synth.gateway.URL)},
		Workers:        append(mapSlice(s.stack.WorkerMetricsURLs(), hostPort), hostPort(synth.worker.URL)),
		RabbitMQ:       []string{brk.PrometheusAddr},
		RuleFiles:      []string{testRules},
	}
	promOut := &proctest.Output{}
	prom, err := stack.StartPrometheus(t.Context(), stack.PrometheusOptions{
		Addr: proctest.FreeAddr(t), Dir: filepath.Join(promDir, "server"), Config: cfg, Output: promOut,
	})
	if err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() {
		if err := prom.Stop(10 * time.Second); err != nil {
			t.Errorf("stop prometheus: %v", err)
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", promOut.String())
		}
	})
	promtool(t, "config", prom.ConfigFile())
	api := newPromAPI(prom.URL())

	// Every target answers, RabbitMQ's own endpoint included.
	wantUp := len(cfg.Gateways) + len(cfg.Workers) + 2*len(cfg.RabbitMQ)
	api.waitQuery(t, "up", 30*time.Second, func(ss []sample) bool {
		n := 0
		for _, x := range ss {
			if x.Value == 1 {
				n++
			}
		}
		if len(ss) == wantUp && n < wantUp && strings.Contains(fmt.Sprint(ss), `job="rabbitmq"} 0`) {
			t.Logf("RabbitMQ's Prometheus endpoint at %s does not answer: enable the plugin (rabbitmq-plugins enable rabbitmq_prometheus; .ci/run does)", brk.PrometheusAddr)
		}
		return n == wantUp
	})

	// Traffic of every kind the dashboards show: completed scripts (plain, async, with requirements: one
	// environment build, then a cache hit), failures (an exception, an unknown script), bad requests,
	// /status and /health.
	//
	// Series labelled by script appear with their first request. Prometheus computes rates from increases
	// between samples, so one request per script comes first, and the rest once Prometheus has seen those
	// series (as in production, where the first request of a script is never part of a rate).
	//
	// completed and failed count the answers of each kind as the gateway and the workers both count them;
	// unanswered the 504s, which only the gateway counts.
	completed, failed, unanswered := 0, 0, 0
	scrape := func(script, status string) {
		s.mustScrape(t, script, map[string]any{"n": completed + failed + unanswered}, status)
		if status == "completed" {
			completed++
		} else {
			failed++
		}
	}
	// A script with requirements: its worker may still be building the environment when even the longest
	// timeout has passed on a loaded machine. The build goes on, and the caller is told to retry
	// (dependencies_installing, or a 504 when the answer came too late): so does this, until a hang guard.
	scrapeDeps := func(script string) {
		var code int
		var r scrapeAnswer
		var raw []byte
		testkit.RetryWhileInstalling(t, script, func() (int, string) {
			code, r, raw = s.scrapeOnce(t, script, map[string]any{"n": completed + failed + unanswered})
			switch {
			case code == http.StatusGatewayTimeout:
				unanswered++
			case code == http.StatusOK && r.ErrorCode == "dependencies_installing":
				failed++
			}
			return code, r.ErrorCode
		})
		if code != http.StatusOK || r.Status != "completed" {
			t.Fatalf("scrape %s: %d %s", script, code, raw)
		}
		completed++
	}
	warm := []string{"echo", "async_echo", "dep_v1"}
	for _, script := range warm {
		if script == "dep_v1" {
			scrapeDeps(script)
		} else {
			scrape(script, "completed")
		}
	}
	api.waitQuery(t, "count(scraping_requests_total) >= "+strconv.Itoa(len(warm)), 20*time.Second, nonEmpty)
	// The gateway is a target of its own: its series must have been scraped too (the HTTP ones, labelled by
	// route and code, appear with the first request; the route is the mux pattern).
	api.waitQuery(t, `sum(scraping_gateway_http_requests_total{route="POST /scrape",code="200"}) >= `+strconv.Itoa(len(warm)), 20*time.Second, nonEmpty)
	for range 8 {
		scrape("echo", "completed")
	}
	scrape("async_echo", "completed")
	scrapeDeps("dep_v1") // the environment is built: a cache hit
	scrape("raiser", "failed")
	scrape("no_such_script", "failed")
	// Failures stay well below the 20% of ScrapeErrorRatioHigh here, retries above included.
	for (failed+unanswered)*100 >= 15*(completed+failed+unanswered) {
		scrape("echo", "completed")
	}
	s.request(t, "POST", "/scrape", `{"script_name": "../etc"}`, s.token, http.StatusUnprocessableEntity)
	s.request(t, "POST", "/scrape", `{}`, "", http.StatusUnauthorized)
	s.request(t, "GET", "/status", "", s.token, http.StatusOK)
	s.request(t, "GET", "/health", "", "", http.StatusOK)
	// Wait until Prometheus has scraped all of it, on both sides.
	gatewayTotal, workerTotal := strconv.Itoa(completed+failed+unanswered), strconv.Itoa(completed+failed)
	api.waitQuery(t, "sum(scraping_gateway_scrapes_total) >= "+gatewayTotal+" and sum(scraping_requests_total) >= "+workerTotal, 20*time.Second, nonEmpty)
	t.Logf("traffic: %d completed, %d failed, %d unanswered (504)", completed, failed, unanswered)

	t.Run("every panel query returns data", func(t *testing.T) {
		checkDashboards(t, api, map[string]string{"queue": s.queue})
	})

	// Nothing fires while all is well.
	if firing := firingAlerts(t, api); len(firing) > 0 {
		t.Fatalf("alerts fire on a healthy stack: %+v", firing)
	}
	fired := map[string]bool{}
	expect := func(name string, labels map[string]string) {
		t.Helper()
		a := api.waitFiring(t, name, labels, alertTimeout)
		t.Logf("%s fires: %v (value %s)", name, a.Labels, a.Value)
		fired[name] = true
	}

	// A malformed task: the worker dead-letters it.
	publishRaw(t, brk.URL, s.queue, []byte("this is not a task"))
	expect("DeadLetterQueueNotEmpty", map[string]string{"job": stack.JobGateway})

	// Webhook deliveries whose retries ran out.
	synth.failWebhooks(2)
	expect("WebhookDeliveriesFailing", map[string]string{"job": stack.JobWorker})

	// Scripts failing: the error ratio passes 20%.
	for range 3 * (completed + failed + unanswered) / 2 {
		s.mustScrape(t, "raiser", nil, "failed")
	}
	expect("ScrapeErrorRatioHigh", map[string]string{"job": stack.JobGateway})

	// Every worker stops: nobody consumes, and callers' tasks wait in the queue (they get 504 later).
	var wg sync.WaitGroup
	for _, p := range s.stack.Processes()[1:] {
		wg.Go(func() {
			if err := p.Stop(30 * time.Second); err != nil {
				t.Errorf("stop %s: %v", p.Name(), err)
			}
		})
	}
	wg.Wait()
	expect("NoWorkers", map[string]string{"job": stack.JobGateway})
	for i := range 3 {
		wg.Go(func() {
			// The longest timeout: the tasks stay queued (their AMQP expiration is the caller's deadline)
			// well past what the alert needs to go through pending to firing.
			body := fmt.Sprintf(`{"script_name":"echo","parameters":{"waiting":%d},"timeout":%d}`, i, maxTimeout)
			s.request(t, "POST", "/scrape", body, s.token, http.StatusGatewayTimeout)
		})
	}
	expect("QueueBackingUp", map[string]string{"job": stack.JobGateway})

	// A RabbitMQ node that does not answer (a port where nothing listens: the shared broker stays up for
	// the other suites), and a gateway whose broker does not answer.
	deadNode := proctest.FreeAddr(t)
	deadGateway := startCutOffGateway(t, proctest.FreeAddr(t))
	cfg.RabbitMQ = append(cfg.RabbitMQ, deadNode)
	cfg.Gateways = append(cfg.Gateways, deadGateway)
	if err := prom.Reload(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	expect("RabbitMQDown", map[string]string{"instance": deadNode})
	expect("BrokerUnreachable", map[string]string{"instance": deadGateway})
	for _, a := range firingAlerts(t, api) {
		if a.Labels["alertname"] == "RabbitMQDown" && a.Labels["instance"] != deadNode {
			t.Errorf("RabbitMQDown fires for the broker that runs: %v", a.Labels)
		}
		if a.Labels["alertname"] == "BrokerUnreachable" && a.Labels["instance"] != deadGateway {
			t.Errorf("BrokerUnreachable fires for a connected process: %v", a.Labels)
		}
	}

	// Every alert of the rule file was provoked: a new rule needs its scenario here.
	for _, r := range rules {
		if !fired[r.Name] {
			t.Errorf("alert %s was never provoked: add its scenario to this test", r.Name)
		}
	}
	wg.Wait() // the callers whose tasks nobody took have had their 504
}

// checkDashboards evaluates every panel query and variable of every dashboard and fails for each that
// still returns nothing, or nothing but NaN, dashboardSettle after the check began (series that the scraped
// processes refresh on their own schedule, like RabbitMQ's per-queue metrics, may take a few seconds).
func checkDashboards(t *testing.T, api *promAPI, vars map[string]string) {
	start := time.Now()
	deadline := start.Add(dashboardSettle)
	// settle retries check until it passes or the deadline is past, and returns its last error.
	waited := 0
	settle := func(check func() error) error {
		for {
			err := check()
			if err == nil || time.Now().After(deadline) {
				return err
			}
			waited++
			time.Sleep(250 * time.Millisecond)
		}
	}
	n := 0
	for _, d := range loadDashboards(t) {
		for _, v := range d.Templating.List {
			m := labelValuesQuery.FindStringSubmatch(v.Definition)
			if m == nil {
				t.Errorf("%s: variable %s: unsupported query %q", d.file, v.Name, v.Definition)
				continue
			}
			if err := settle(func() error {
				vals, err := api.labelValues(t.Context(), m[2], m[1])
				if err != nil || !slices.Contains(vals, vars[v.Name]) {
					return fmt.Errorf("does not offer %q: %v %v", vars[v.Name], vals, err)
				}
				return nil
			}); err != nil {
				t.Errorf("%s: variable %s (%s) %v", d.file, v.Name, v.Definition, err)
			}
		}
		for _, q := range d.queries() {
			n++
			expr, err := interpolate(q.expr, vars)
			if err != nil {
				t.Errorf("%s: %v", q, err)
				continue
			}
			if err := settle(func() error {
				samples, err := api.query(t.Context(), expr)
				switch {
				case err != nil:
					return fmt.Errorf("%s: %v", expr, err)
				case len(samples) == 0:
					return fmt.Errorf("no data: %s", expr)
				case !finite(samples):
					return fmt.Errorf("only NaN/Inf: %s = %v", expr, samples)
				}
				return nil
			}); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	}
	t.Logf("%d panel queries evaluated; %d retries while data settled, %s in all", n, waited, time.Since(start).Round(time.Millisecond))
}

func firingAlerts(t *testing.T, api *promAPI) []alert {
	t.Helper()
	all, err := api.alerts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []alert
	for _, a := range all {
		if a.State == "firing" {
			out = append(out, a)
		}
	}
	return out
}

func nonEmpty(s []sample) bool { return len(s) > 0 }

// liveStack is the gateway and workers under test.
type liveStack struct {
	stack      *stack.Stack
	gatewayURL string
	token      string
	queue      string
	env        []string
	out        *proctest.Output
}

// startStack starts a gateway and n workers on a queue of their own, reading the repository's scripts and
// the test fixtures from an S3-compatible server (published with scrapectl, as deployed), with a wheel
// folder for the scripts with requirements.
func startStack(t *testing.T, amqpURL string, workers int) *liveStack {
	t.Helper()
	queue := testkit.Queue(t, amqpURL, "obs")
	scripts := t.TempDir()
	testkit.CopyTree(t, filepath.Join(repoRoot, "scripts"), scripts)
	scripttest.Copy(t, scripts, testkit.Scripts...)
	wheels := t.TempDir()
	wheeltest.Build(t, wheels, "conflictpkg", "1.0", "")
	s3 := startS3(t, scripts)

	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"RABBITMQ_URL=" + amqpURL,
		"RABBITMQ_TASK_QUEUE=" + queue,
		"JWT_SECRET=" + jwtSecret,
		"WORKER_CONCURRENCY=2",
		"WORKER_WORK_DIR=" + t.TempDir(),
		"WORKER_DRAIN_TIMEOUT=10s",
		"PIP_NO_INDEX=1",
		"PIP_FIND_LINKS=" + wheels,
		"LOG_LEVEL=info",
	}
	env = append(env, s3.Env()...)
	s, out := testkit.StartStack(t, binDir, workers, env)
	tok, err := auth.IssueHS256([]byte(jwtSecret), auth.Claims{Subject: "observability"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &liveStack{stack: s, gatewayURL: s.GatewayURL(), token: tok, queue: queue, env: env, out: out}
}

// startS3 runs versitygw until the test ends and publishes every script folder of dir to it.
func startS3(t *testing.T, dir string) *stack.S3Server {
	t.Helper()
	bin, err := stack.LookVersityGW(os.Getenv("VERSITYGW"), repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	out := &proctest.Output{}
	s3, err := stack.StartS3(t.Context(), stack.S3Options{
		Binary: bin, Addr: proctest.FreeAddr(t), Dir: t.TempDir(), Bucket: "obs-scripts",
		AccessKey: "observability", SecretKey: "observability-secret-key", Output: out,
	})
	if err != nil {
		t.Fatalf("start the S3 server: %v", err)
	}
	t.Cleanup(func() {
		if err := s3.Stop(10 * time.Second); err != nil {
			t.Errorf("stop the S3 server: %v", err)
		}
	})
	if _, err := s3.PublishScripts(t.Context(), filepath.Join(binDir, "scrapectl"), dir); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	return s3
}

// startCutOffGateway runs one more gateway whose broker address has nothing listening, serving on addr,
// and returns addr once its /metrics answers (its /health says unhealthy, rightly).
func startCutOffGateway(t *testing.T, addr string) string {
	t.Helper()
	env := []string{"PATH=" + os.Getenv("PATH"), "JWT_SECRET=" + jwtSecret, "GATEWAY_ADDR=" + addr,
		"RABBITMQ_URL=amqp://guest:guest@" + proctest.FreeAddr(t) + "/"}
	out := &proctest.Output{}
	p, err := stack.StartProcess(t.Context(), "gateway-cut-off", filepath.Join(binDir, stack.GatewayBinary), nil, env, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(10 * time.Second) })
	if err := stack.WaitReady(t.Context(), p, "http://"+addr+"/metrics", 15*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	return addr
}

// mustScrape posts a scrape and fails unless it answers 200 with the given status.
func (s *liveStack) mustScrape(t *testing.T, script string, params map[string]any, status string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"script_name": script, "parameters": params, "timeout": maxTimeout})
	raw := s.request(t, "POST", "/scrape", string(body), s.token, http.StatusOK)
	var r struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(raw, &r); err != nil || r.Status != status {
		t.Fatalf("scrape %s: status %q, want %q: %s", script, r.Status, status, raw)
	}
}

// scrapeAnswer is the part of a scrape's answer the tests read.
type scrapeAnswer struct {
	Status    string `json:"status"`
	ErrorCode string `json:"error_code"`
}

// scrapeOnce posts a scrape with the longest timeout and returns whatever the gateway answered.
func (s *liveStack) scrapeOnce(t *testing.T, script string, params map[string]any) (int, scrapeAnswer, []byte) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"script_name": script, "parameters": params, "timeout": maxTimeout})
	req, err := http.NewRequestWithContext(t.Context(), "POST", s.gatewayURL+"/scrape", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("POST /scrape: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var r scrapeAnswer
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("POST /scrape: %d, body is not JSON: %q", resp.StatusCode, raw)
	}
	return resp.StatusCode, r, raw
}

// request sends one request to the gateway and fails (from any goroutine: t.Errorf) unless it answers
// want.
func (s *liveStack) request(t *testing.T, method, path, body, token string, want int) []byte {
	req, err := http.NewRequestWithContext(context.WithoutCancel(t.Context()), method, s.gatewayURL+path, strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return nil
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Errorf("%s %s: %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	return raw
}

// publishRaw puts body on the task queue as a task would arrive, bypassing the gateway.
func publishRaw(t *testing.T, url, queue string, body []byte) {
	t.Helper()
	_, ch := brokertest.Channel(t, url)
	if err := ch.PublishWithContext(t.Context(), "", queue, true, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: body,
	}); err != nil {
		t.Fatal(err)
	}
}

func hostPort(base string) string {
	return strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "https://")
}

func mapSlice(in []string, f func(string) string) []string {
	out := make([]string, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}
