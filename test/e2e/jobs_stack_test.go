package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/local/stack"
	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/brokertest"
	"github.com/scrapeplatform/platform/shared/proctest"
	"github.com/scrapeplatform/platform/shared/s3test"
	"github.com/scrapeplatform/platform/shared/scripttest"
	"github.com/scrapeplatform/platform/shared/webhook"
	"github.com/scrapeplatform/platform/test/testkit"
)

// The tests of this file run the whole platform with jobs, as `make run` does: the real gateway-local and
// worker processes, RabbitMQ, and a job store on a real versitygw, both processes reading the same
// JOB_STORE_* and S3_* variables (local/cmd/localstack passes the same). Only the outside is played by the
// test: HTTP clients, and a webhook receiver on loopback.

// jobStack is a running stack with a job store and a webhook signing secret.
type jobStack struct {
	*env
	s3     *s3test.Server
	secret webhook.Secret
}

// startJobStack starts a versitygw with the jobs bucket, then a gateway and n workers with the job store, a
// WEBHOOK_SECRET and short webhook retry delays (1s, 2s), plus extraEnv (which wins).
func startJobStack(t *testing.T, workers int, extraEnv ...string) *jobStack {
	t.Helper()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "jobs", false)
	secret, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	jobEnv := []string{"JOB_STORE_BUCKET=jobs", "S3_ENDPOINT_URL=" + srv.Endpoint, "S3_REGION=" + srv.Region,
		"S3_ACCESS_KEY=" + srv.AccessKey, "S3_SECRET_KEY=" + srv.SecretKey,
		"WEBHOOK_SECRET=" + secret.Encode(), "WEBHOOK_RETRY_DELAYS=1s,2s"}
	jobEnv = append(jobEnv, extraEnv...)
	hooks, err := webhook.LoadConfig(func(name string) string {
		v := ""
		for _, kv := range jobEnv {
			if k, val, _ := strings.Cut(kv, "="); k == name {
				v = val
			}
		}
		return v
	})
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, workers, jobEnv...)
	scripttest.Copy(t, e.scripts, "huge_result", "long_job")
	// What the jobs add to the task queue's topology (testkit.Queue deletes the rest), the webhook delay
	// queues the deliverers declare included; cleanups run last first, so this one runs after the stack
	// has stopped.
	topo := broker.NewTopology(e.queue)
	q := webhook.NewQueues(e.queue)
	queues := []string{q.Main, q.Dead, topo.LeaseQueue()}
	for _, d := range hooks.Schedule.DelayLevels() {
		queues = append(queues, q.Delay(d))
	}
	brokertest.DeleteQueues(t, e.amqpURL, queues, []string{topo.CancelExchange})
	return &jobStack{env: e, s3: srv, secret: secret}
}

// submit POSTs a scrape with extra headers (name, value pairs).
func (e *env) submit(t *testing.T, script string, params map[string]any, timeout float64, headers ...string) response {
	t.Helper()
	body := map[string]any{"script_name": script, "parameters": params}
	if timeout > 0 {
		body["timeout"] = timeout
	}
	b, _ := json.Marshal(body)
	return e.doWith(t, "POST", "/scrape", string(b), e.token, headers)
}

// accepted checks a 202 answer (Location of the job, a pending status) and returns the job's id.
func accepted(t *testing.T, r response) string {
	t.Helper()
	id, _ := r.Body["request_id"].(string)
	if r.Code != http.StatusAccepted || id == "" || r.Header.Get("Location") != "/jobs/"+id {
		t.Fatalf("want 202 with Location /jobs/{id}: %d %v %.500s", r.Code, r.Header, r.Raw)
	}
	if s := r.Body["status"]; s != "queued" && s != "running" {
		t.Fatalf("202 with status %v: %.500s", s, r.Raw)
	}
	if _, err := time.Parse(time.RFC3339Nano, fmt.Sprint(r.Body["created_at"])); err != nil {
		t.Fatalf("202 without created_at: %.500s", r.Raw)
	}
	return id
}

// finalOf returns the final job of a scrape's answer: the answer itself when it is final (200), else the job
// polled to its end (202).
func finalOf(t *testing.T, e *env, r response) response {
	t.Helper()
	if r.Code == http.StatusOK {
		return r
	}
	return pollJob(t, e, accepted(t, r), e.token)
}

// times reads a job's created_at, started_at and finished_at and checks their order.
func times(t *testing.T, r response) (created, started, finished time.Time) {
	t.Helper()
	parse := func(name string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, fmt.Sprint(r.Body[name]))
		if err != nil {
			t.Fatalf("%s of the job is %v: %.500s", name, r.Body[name], r.Raw)
		}
		return v
	}
	created, started, finished = parse("created_at"), parse("started_at"), parse("finished_at")
	if started.Before(created) || finished.Before(started) {
		t.Errorf("times out of order: created %s, started %s, finished %s", created, started, finished)
	}
	return created, started, finished
}

// waitFor polls cond every 100 ms until it holds, failing after timeout (a hang guard, not a bound).
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, timeout)
		}
	}
}

// sharedDir is a folder the scripts may write to, whichever user runs them.
func sharedDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A scrape of 40 s with "timeout": 60 (what the original spec's clients send) outlives the 25 s sync
// window: 202 with the job's Location, then completed — found by polling for one, by long polls for another.
// Prefer: respond-async answers 202 at once.
func TestJobStackLongScrapeByPollAndLongPoll(t *testing.T) {
	t.Parallel()
	js := startJobStack(t, 1)
	e := js.env
	answers := make([]response, 2)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() { answers[i] = e.submit(t, "sleeper", map[string]any{"seconds": 40, "n": i}, 60) })
	}
	wg.Wait()
	polled, longPolled := accepted(t, answers[0]), accepted(t, answers[1])

	async := e.submit(t, "sleeper", map[string]any{"seconds": 2}, 30, "Prefer", "respond-async")
	if async.Header.Get("Preference-Applied") != "respond-async" {
		t.Errorf("respond-async: Preference-Applied %q", async.Header.Get("Preference-Applied"))
	}
	asyncID := accepted(t, async)

	done := pollJob(t, e, polled, e.token)
	var lp response
	for i := 0; ; i++ {
		lp = e.do(t, "GET", "/jobs/"+longPolled+"?wait=20", "", e.token)
		if lp.Code != http.StatusOK {
			t.Fatalf("long poll: %d %s", lp.Code, lp.Raw)
		}
		if s := lp.Body["status"]; s != "queued" && s != "running" {
			break
		}
		if i == 10 {
			t.Fatalf("job still %v after %d long polls", lp.Body["status"], i+1)
		}
	}
	for _, r := range []response{done, lp} {
		if r.Body["status"] != "completed" || fmt.Sprint(r.Body["data"]) != "map[slept:40]" || r.Body["error_code"] != nil {
			t.Fatalf("long scrape: %s", r.Raw)
		}
		_, started, finished := times(t, r)
		if finished.Sub(started) < 40*time.Second {
			t.Errorf("a 40 s script ran from %s to %s", started, finished)
		}
	}
	if r := pollJob(t, e, asyncID, e.token); r.Body["status"] != "completed" || fmt.Sprint(r.Body["data"]) != "map[slept:2]" {
		t.Fatalf("respond-async job: %s", r.Raw)
	} else {
		times(t, r)
	}
}

// A 3 MiB result comes back whole, inline (in the sync answer and from GET /jobs); a 50 MiB one through
// data_url, the same bytes each time it is fetched.
func TestJobStackLargeResults(t *testing.T) {
	t.Parallel()
	js := startJobStack(t, 1)
	e := js.env
	const small, large = 3 << 20, 50 << 20
	blob := func(t *testing.T, what string, data any, n int) {
		t.Helper()
		m, _ := data.(map[string]any)
		if s, _ := m["blob"].(string); len(s) != n || strings.Trim(s, "x") != "" {
			t.Fatalf("%s: data.blob is %d bytes, want %d", what, len(s), n)
		}
	}

	r := e.submit(t, "huge_result", map[string]any{"bytes": small}, 120)
	if r.Code != http.StatusOK {
		t.Logf("3 MiB scrape answered %d on a slow machine; polling", r.Code)
	}
	r = finalOf(t, e, r)
	if r.Body["status"] != "completed" || r.Body["data_url"] != nil {
		t.Fatalf("3 MiB result: %.500s", r.Raw)
	}
	blob(t, "answer", r.Body["data"], small)
	id := r.Body["request_id"].(string)
	got := e.do(t, "GET", "/jobs/"+id, "", e.token)
	if got.Code != http.StatusOK || got.Body["status"] != "completed" || got.Body["data_url"] != nil {
		t.Fatalf("GET the 3 MiB job: %d %.500s", got.Code, got.Raw)
	}
	blob(t, "GET /jobs", got.Body["data"], small)

	r = finalOf(t, e, e.submit(t, "huge_result", map[string]any{"bytes": large}, 300))
	url, _ := r.Body["data_url"].(string)
	if r.Body["status"] != "completed" || r.Body["data"] != nil || url == "" {
		t.Fatalf("50 MiB result: %.500s", r.Raw)
	}
	size, _ := r.Body["result_size"].(float64)
	first := download(t, url)
	if int64(len(first)) != int64(size) || !json.Valid(first) {
		t.Fatalf("data_url served %d bytes (result_size %v), valid JSON %v", len(first), size, json.Valid(first))
	}
	var v map[string]any
	if err := json.Unmarshal(first, &v); err != nil {
		t.Fatal(err)
	}
	blob(t, "data_url", v, large)
	id = r.Body["request_id"].(string)
	got = e.do(t, "GET", "/jobs/"+id, "", e.token)
	again, _ := got.Body["data_url"].(string)
	if got.Code != http.StatusOK || again == "" || got.Body["data"] != nil {
		t.Fatalf("GET the 50 MiB job: %d %.500s", got.Code, got.Raw)
	}
	if second := download(t, again); sha256.Sum256(second) != sha256.Sum256(first) {
		t.Fatalf("the job's data_url served %d other bytes", len(second))
	}
}

func download(t *testing.T, url string) []byte {
	t.Helper()
	client := &http.Client{Timeout: 2 * time.Minute}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || err != nil {
		t.Fatalf("GET data_url: %d %v %.300s", resp.StatusCode, err, b)
	}
	return b
}

// A queued job that is cancelled never runs; a running one is stopped with its whole process tree, the
// grandchild that left the session with setsid included; the worker then serves the next task.
func TestJobStackCancelQueuedAndRunning(t *testing.T) {
	t.Parallel()
	js := startJobStack(t, 1, "WORKER_CONCURRENCY=1")
	e := js.env
	dir := sharedDir(t)
	async := []string{"Prefer", "respond-async"}
	release, blockerStarted := filepath.Join(dir, "release"), filepath.Join(dir, "blocker-started")
	queuedStarted := filepath.Join(dir, "queued-started")

	// The only slot is busy, so the next job waits in the queue.
	blocker := accepted(t, e.submit(t, "sleeper", map[string]any{"seconds": 300, "until_file": release, "started_file": blockerStarted}, 400, async...))
	waitFor(t, time.Minute, "the blocking job starts", func() bool { _, err := os.Stat(blockerStarted); return err == nil })
	queued := accepted(t, e.submit(t, "sleeper", map[string]any{"seconds": 1, "started_file": queuedStarted}, 30, async...))
	if r := e.do(t, "GET", "/jobs/"+queued, "", e.token); r.Body["status"] != "queued" {
		t.Fatalf("the second job while the slot is busy: %s", r.Raw)
	}
	c := e.do(t, "DELETE", "/jobs/"+queued, "", e.token)
	if c.Code != http.StatusOK || c.Body["status"] != "cancelled" || c.Body["error_code"] != "cancelled" {
		t.Fatalf("cancel the queued job: %d %s", c.Code, c.Raw)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := pollJob(t, e, blocker, e.token); r.Body["status"] != "completed" {
		t.Fatalf("the blocking job: %s", r.Raw)
	}

	// One slot, one queue: once this job runs, the worker has taken (and dropped) the cancelled one.
	pidDir := sharedDir(t)
	running := accepted(t, e.submit(t, "long_job", map[string]any{"pid_dir": pidDir, "seconds": 600}, 900, async...))
	var pids []int
	waitFor(t, time.Minute, "long_job records its pids", func() bool {
		pids = readPids(t, pidDir)
		return len(pids) == 3
	})
	if _, err := os.Stat(queuedStarted); err == nil {
		t.Fatal("the job cancelled while queued ran")
	}
	if r := e.do(t, "GET", "/jobs/"+queued, "", e.token); r.Body["status"] != "cancelled" || r.Body["started_at"] != nil {
		t.Fatalf("the job cancelled while queued, after its task was taken: %s", r.Raw)
	}
	if r := e.do(t, "GET", "/jobs/"+running, "", e.token); r.Body["status"] != "running" {
		t.Fatalf("long_job before its cancel: %s", r.Raw)
	}
	for _, p := range pids {
		if !processAlive(p) {
			t.Fatalf("pid %d of %v is not running before the cancel", p, pids)
		}
	}
	c = e.do(t, "DELETE", "/jobs/"+running, "", e.token)
	if c.Code != http.StatusOK || c.Body["status"] != "cancelled" {
		t.Fatalf("cancel the running job: %d %s", c.Code, c.Raw)
	}
	// The issue's bound is 2 s; the test only polls (a loaded machine), with a generous hang guard.
	waitFor(t, time.Minute, fmt.Sprintf("the cancelled job's processes %v are gone", pids), func() bool {
		for _, p := range pids {
			if processAlive(p) {
				return false
			}
		}
		return true
	})
	if r := pollJob(t, e, running, e.token); r.Body["status"] != "cancelled" || r.Body["error_code"] != "cancelled" {
		t.Fatalf("the cancelled running job: %s", r.Raw)
	}
	if again := e.do(t, "DELETE", "/jobs/"+running, "", e.token); again.Code != http.StatusOK || again.Body["status"] != "cancelled" {
		t.Fatalf("repeated cancel: %d %s", again.Code, again.Raw)
	}
	if r := finalOf(t, e, e.scrape(t, "echo", map[string]any{"after": "cancel"}, 30)); r.Body["status"] != "completed" {
		t.Fatalf("a scrape after the cancels: %s", r.Raw)
	}
}

// readPids reads the pids long_job recorded in dir (none until its file is there).
func readPids(t *testing.T, dir string) []int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, en := range entries {
		if strings.HasSuffix(en.Name(), ".tmp") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, en.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range strings.Fields(string(b)) {
			p, err := strconv.Atoi(f)
			if err != nil {
				t.Fatalf("%s holds %q", en.Name(), b)
			}
			pids = append(pids, p)
		}
	}
	return pids
}

// Two racing requests with one Idempotency-Key make one job whose script runs once; the key with another
// body is refused. Another client finds neither the job nor a way to cancel it.
func TestJobStackIdempotencyAndOwnership(t *testing.T) {
	t.Parallel()
	js := startJobStack(t, 2)
	e := js.env
	started := filepath.Join(sharedDir(t), "started")
	params := map[string]any{"seconds": 2, "started_file": started}
	key := []string{"Idempotency-Key", "order-7-" + e.queue, "Prefer", "respond-async"}
	answers := make([]response, 2)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() { answers[i] = e.submit(t, "sleeper", params, 30, key...) })
	}
	wg.Wait()
	id, _ := answers[0].Body["request_id"].(string)
	for i, a := range answers {
		if (a.Code != http.StatusAccepted && a.Code != http.StatusOK) || a.Body["request_id"] != id {
			t.Fatalf("racing request %d: %d %s (the other: %s)", i, a.Code, a.Raw, id)
		}
	}

	other := issue(t, "another-client")
	for _, method := range []string{"GET", "DELETE"} {
		if r := e.do(t, method, "/jobs/"+id, "", other); r.Code != http.StatusNotFound || r.Body["error_code"] != "job_not_found" {
			t.Errorf("%s another client's job: %d %s", method, r.Code, r.Raw)
		}
	}
	done := pollJob(t, e, id, e.token)
	if done.Body["status"] != "completed" {
		t.Fatalf("the job (not cancelled by the other client's DELETE): %s", done.Raw)
	}
	if r := e.submit(t, "sleeper", params, 30, key...); r.Code != http.StatusOK || r.Body["request_id"] != id || r.Body["status"] != "completed" {
		t.Fatalf("replay after the end: %d %s", r.Code, r.Raw)
	}
	b, err := os.ReadFile(started)
	if err != nil {
		t.Fatal(err)
	}
	if runs := strings.Count(string(b), "\n"); runs != 1 {
		t.Fatalf("the script ran %d times for one Idempotency-Key", runs)
	}
	params["seconds"] = 3
	if r := e.submit(t, "sleeper", params, 30, key...); r.Code != http.StatusUnprocessableEntity || r.Body["error_code"] != "idempotency_conflict" {
		t.Fatalf("same key, other body: %d %s", r.Code, r.Raw)
	}
}

// receiver is a webhook endpoint that fails its first fail attempts with 500, then accepts.
type receiver struct {
	*httptest.Server
	fail int

	mu       sync.Mutex
	attempts []delivery
}

type delivery struct {
	header http.Header
	body   []byte
	code   int
}

func newReceiver(t *testing.T, fail int) *receiver {
	t.Helper()
	rc := &receiver{fail: fail}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		code := http.StatusOK
		if len(rc.attempts) < rc.fail {
			code = http.StatusInternalServerError
		}
		rc.attempts = append(rc.attempts, delivery{header: r.Header.Clone(), body: body, code: code})
		rc.mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) seen() []delivery {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]delivery(nil), rc.attempts...)
}

// webhookState returns the job's webhook.status and attempts.
func webhookState(t *testing.T, e *env, id string) (string, int) {
	t.Helper()
	r := e.do(t, "GET", "/jobs/"+id, "", e.token)
	w, _ := r.Body["webhook"].(map[string]any)
	s, _ := w["status"].(string)
	n, _ := w["attempts"].(float64)
	return s, int(n)
}

// checkDeliveries checks that rc got three attempts of one signed message about job id, the last (only)
// one accepted, each verified by the receiver's side of shared/webhook.
func checkDeliveries(t *testing.T, js *jobStack, rc *receiver, id string) {
	t.Helper()
	seen := rc.seen()
	if len(seen) != 3 {
		t.Fatalf("the receiver saw %d attempts, want 3", len(seen))
	}
	other, _ := webhook.NewSecret()
	for i, d := range seen {
		if want := map[bool]int{true: 200, false: 500}[i == 2]; d.code != want {
			t.Errorf("attempt %d answered %d", i+1, d.code)
		}
		if d.header.Get(webhook.HeaderID) != seen[0].header.Get(webhook.HeaderID) {
			t.Errorf("attempt %d has webhook-id %q, the first %q", i+1, d.header.Get(webhook.HeaderID), seen[0].header.Get(webhook.HeaderID))
		}
		if err := webhook.Verify([]webhook.Secret{js.secret}, d.header, d.body, time.Now()); err != nil {
			t.Errorf("attempt %d: signature: %v", i+1, err)
		}
		if err := webhook.Verify([]webhook.Secret{other}, d.header, d.body, time.Now()); err == nil {
			t.Errorf("attempt %d verifies with another secret", i+1)
		}
		var body map[string]any
		if err := json.Unmarshal(d.body, &body); err != nil || body["request_id"] != id || body["status"] != "completed" {
			t.Errorf("attempt %d body: %v %s", i+1, err, d.body)
		}
	}
	if s, n := webhookState(t, js.env, id); s != "delivered" || n != 3 {
		t.Errorf("the job's webhook: %s after %d attempts", s, n)
	}
}

// A receiver that fails twice then succeeds gets one accepted, verifiable delivery; the job shows it.
func TestJobStackWebhookRetries(t *testing.T) {
	t.Parallel()
	js := startJobStack(t, 1)
	e := js.env
	rc := newReceiver(t, 2)
	body, _ := json.Marshal(map[string]any{"script_name": "echo", "parameters": map[string]any{"hook": 1}, "callback_url": rc.URL + "/hook"})
	r := e.doWith(t, "POST", "/scrape", string(body), e.token, []string{"Prefer", "respond-async"})
	id := accepted(t, r)
	if done := pollJob(t, e, id, e.token); done.Body["status"] != "completed" || done.Body["callback_url"] != rc.URL+"/hook" {
		t.Fatalf("the job: %s", done.Raw)
	}
	waitFor(t, 2*time.Minute, "the webhook is delivered", func() bool { s, _ := webhookState(t, e, id); return s == "delivered" })
	checkDeliveries(t, js, rc, id)
	// Nothing more arrives once delivered (a short look: a duplicate would follow within the retry delays).
	time.Sleep(3 * time.Second)
	if n := len(rc.seen()); n != 3 {
		t.Fatalf("%d attempts after the delivery, want 3", n)
	}
}

// The retries are durable: the worker process is stopped after the first failed attempt and a new one
// delivers the rest. The first retry waits 10 s, so the restart usually falls before it (after it on a slow
// machine, which the test accepts: the last attempt is still the new worker's).
func TestJobStackWebhookRetriesSurviveAWorkerRestart(t *testing.T) {
	t.Parallel()
	js := startJobStack(t, 1, "WEBHOOK_RETRY_DELAYS=10s,1s")
	e := js.env
	rc := newReceiver(t, 2)
	body, _ := json.Marshal(map[string]any{"script_name": "echo", "parameters": map[string]any{"hook": 2}, "callback_url": rc.URL + "/hook"})
	id := accepted(t, e.doWith(t, "POST", "/scrape", string(body), e.token, []string{"Prefer", "respond-async"}))
	pollJob(t, e, id, e.token)
	waitFor(t, 2*time.Minute, "the first attempt is recorded", func() bool { _, n := webhookState(t, e, id); return n >= 1 })

	old := e.stack.Processes()[1]
	if err := old.Stop(40 * time.Second); err != nil {
		t.Fatalf("stop the worker: %v", err)
	}
	attemptsBefore := len(rc.seen())
	if attemptsBefore >= 3 {
		t.Fatalf("all %d attempts were made before the restart", attemptsBefore)
	}
	metrics := startWorker(t, e, "worker-restarted")
	waitFor(t, 2*time.Minute, "the webhook is delivered", func() bool { s, _ := webhookState(t, e, id); return s == "delivered" })
	checkDeliveries(t, js, rc, id)
	if v, _, err := testkit.Metric(metrics, `scraping_webhook_deliveries_total{attempt="3",outcome="delivered"}`); err != nil || v != 1 {
		t.Errorf("the new worker's delivered attempt 3: %v %v", v, err)
	}
	t.Logf("attempts before the restart: %d", attemptsBefore)
}

// startWorker starts one more worker process with the stack's environment until the test ends, waits until
// it is ready, and returns its metrics URL.
func startWorker(t *testing.T, e *env, id string) string {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))
	env := append(append([]string(nil), e.baseEnv...), "WORKER_ID="+id, "WORKER_METRICS_ADDR="+addr)
	p, err := stack.StartProcess(context.Background(), id, filepath.Join(binDir, stack.WorkerBinary), nil, env, e.out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(40 * time.Second); err != nil {
			t.Errorf("stop %s: %v", id, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := stack.WaitReady(ctx, p, "http://"+addr+"/healthz", 45*time.Second); err != nil {
		t.Fatalf("%s not ready: %v", id, err)
	}
	return "http://" + addr + "/metrics"
}
