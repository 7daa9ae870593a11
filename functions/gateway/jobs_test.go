package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/auth"
	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/job"
	"github.com/scrapeplatform/platform/shared/netguard"
)

// countingRecorder counts JobAccepted by mode.
type countingRecorder struct {
	nopRecorder
	mu       sync.Mutex
	accepted map[string]int
}

func (c *countingRecorder) JobAccepted(mode string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.accepted == nil {
		c.accepted = map[string]int{}
	}
	c.accepted[mode]++
}

func (c *countingRecorder) count(mode string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.accepted[mode]
}

// fakeCallbacks records the jobs enqueued for their webhook.
type fakeCallbacks struct {
	mu   sync.Mutex
	jobs []job.Job
}

func (f *fakeCallbacks) Enqueue(_ context.Context, j job.Job) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs = append(f.jobs, j)
	return nil
}

// fakeResolver resolves from a map (unit tests must not depend on DNS).
type fakeResolver map[string]string

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	a, ok := f[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	return []netip.Addr{netip.MustParseAddr(a)}, nil
}

// downStore is a job store whose storage does not answer.
type downStore struct{ JobStore }

var errDown = contract.Transiently(errors.New("s3: connection refused"))

func (downStore) Create(context.Context, job.Job) error { return errDown }
func (downStore) Get(context.Context, string, string) (job.Job, error) {
	return job.Job{}, errDown
}
func (downStore) Cancel(context.Context, string, string, time.Time) (job.Job, error) {
	return job.Job{}, errDown
}
func (downStore) Claim(context.Context, string, string, string, string) (string, bool, error) {
	return "", false, errDown
}

type jobEnv struct {
	h     *Handler
	fb    *fakeBroker
	store *job.Memory
	rec   *countingRecorder
	cbs   *fakeCallbacks
}

func newJobEnv(t *testing.T, answer func(contract.Request) (*contract.Reply, error), tweak func(*Config)) *jobEnv {
	t.Helper()
	v, err := auth.NewHS256(auth.HS256Config{Secret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.SyncWait = 2 * time.Second
	if tweak != nil {
		tweak(&cfg)
	}
	e := &jobEnv{fb: &fakeBroker{answer: answer, connected: true}, store: job.NewMemory(0, nil), rec: &countingRecorder{}, cbs: &fakeCallbacks{}}
	e.h = New(cfg, Options{Broker: e.fb, Authenticator: bearerAuth{Verifier: v}, Logger: testLogger(t), Recorder: e.rec,
		Jobs: e.store, Callbacks: e.cbs, Resolver: fakeResolver{"hooks.example.com": "93.184.215.14", "evil.example.com": "169.254.169.254"}})
	return e
}

func tokenFor(t *testing.T, subject string) map[string]string {
	t.Helper()
	tok, err := auth.IssueHS256([]byte(testSecret), auth.Claims{Subject: subject}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"Authorization": "Bearer " + tok}
}

func with(h map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// never publishes the task and never answers (the worker is busy).
func never(contract.Request) (*contract.Reply, error) { return nil, context.DeadlineExceeded }

// finish records j's completion as a worker would.
func finish(t *testing.T, s job.Store, id, owner string, data string) {
	t.Helper()
	now := time.Now().UTC()
	j, err := s.Get(context.Background(), id, owner)
	if err != nil {
		t.Fatal(err)
	}
	j.Status, j.StartedAt, j.FinishedAt, j.WorkerID = job.StatusCompleted, now, now, "w9"
	j.Result = &job.Result{Data: json.RawMessage(data), Size: int64(len(data))}
	if _, won, err := s.Finish(context.Background(), j); err != nil || !won {
		t.Fatalf("Finish = %v, %v", won, err)
	}
}

func TestJobDoneWithinTheWindowIs200(t *testing.T) {
	t.Parallel()
	e := newJobEnv(t, completed, nil)
	w, m := do(t, e.h, "POST", "/scrape", `{"script_name":"echo","parameters":{"a":1},"timeout":600}`, tokenFor(t, "alice"))
	if w.Code != 200 || m["status"] != "completed" || m["data"].(map[string]any)["a"] != float64(1) {
		t.Fatalf("got %d %v", w.Code, m)
	}
	req := e.fb.calls[0]
	if req.Job == nil || req.Job.Owner != "alice" {
		t.Fatalf("task job ticket = %+v", req.Job)
	}
	// A job's deadline covers the queue wait and its whole timeout; the gateway waits only the window.
	if want := req.Accepted.Add(e.h.cfg.QueueWait + 600*time.Second + e.h.cfg.ReplyGrace); !req.Deadline.Equal(want) {
		t.Errorf("deadline %v, want %v", req.Deadline, want)
	}
	if e.rec.count(ModeSync) != 1 || e.rec.count(ModeAsync) != 0 {
		t.Errorf("jobs accepted: %v", e.rec.accepted)
	}
	if j, err := e.store.Get(context.Background(), m["request_id"].(string), "alice"); err != nil || j.Status != job.StatusQueued {
		t.Errorf("the store has %+v, %v (the worker, not the gateway, records the end)", j, err)
	}
}

func TestRespondAsyncIs202ThenPollAndLongPoll(t *testing.T) {
	t.Parallel()
	e := newJobEnv(t, never, nil)
	alice := tokenFor(t, "alice")
	w, m := do(t, e.h, "POST", "/scrape", `{"script_name":"slow","timeout":60}`, with(alice, "Prefer", "respond-async"))
	id, _ := m["request_id"].(string)
	if w.Code != 202 || w.Header().Get("Location") != "/jobs/"+id || m["status"] != "queued" || m["created_at"] == nil {
		t.Fatalf("got %d %v %v", w.Code, w.Header(), m)
	}
	if got := w.Header().Get("Preference-Applied"); got != "respond-async" {
		t.Errorf("Preference-Applied %q", got)
	}
	if e.rec.count(ModeAsync) != 1 {
		t.Errorf("jobs accepted: %v", e.rec.accepted)
	}
	// Poll: still queued.
	if w, m := do(t, e.h, "GET", "/jobs/"+id, "", alice); w.Code != 200 || m["status"] != "queued" || m["finished_at"] != nil {
		t.Fatalf("poll: %d %v", w.Code, m)
	}
	// Long poll: answered as the job completes.
	go func() {
		time.Sleep(300 * time.Millisecond)
		finish(t, e.store, id, "alice", `{"title":"done"}`)
	}()
	w, m = do(t, e.h, "GET", "/jobs/"+id+"?wait=20", "", alice)
	if w.Code != 200 || m["status"] != "completed" || m["data"].(map[string]any)["title"] != "done" || m["finished_at"] == nil || m["worker_id"] != "w9" {
		t.Fatalf("long poll: %d %v", w.Code, m)
	}
	// Another client never sees it; an unknown or malformed id is just as unknown.
	for _, tc := range []struct{ path, who string }{{"/jobs/" + id, "bob"}, {"/jobs/nope", "alice"}, {"/jobs/a.b", "alice"}} {
		if w, m := do(t, e.h, "GET", tc.path, "", tokenFor(t, tc.who)); w.Code != 404 || m["error_code"] != "job_not_found" {
			t.Errorf("GET %s as %s: %d %v", tc.path, tc.who, w.Code, m)
		}
		if w, m := do(t, e.h, "DELETE", tc.path, "", tokenFor(t, tc.who)); w.Code != 404 || m["error_code"] != "job_not_found" {
			t.Errorf("DELETE %s as %s: %d %v", tc.path, tc.who, w.Code, m)
		}
	}
	for _, bad := range []string{"?wait=abc", "?wait=-1", "?wait=1&wait=2"} {
		if w, m := do(t, e.h, "GET", "/jobs/"+id+bad, "", alice); w.Code != 400 || m["error_code"] != "invalid_request" {
			t.Errorf("GET %s: %d %v", bad, w.Code, m)
		}
	}
	if w, m := do(t, e.h, "PUT", "/jobs/"+id, "", alice); w.Code != 405 || w.Header().Get("Allow") != "GET, DELETE" {
		t.Errorf("PUT: %d %v", w.Code, m)
	}
	if w, _ := do(t, e.h, "GET", "/jobs/"+id, "", nil); w.Code != 401 {
		t.Errorf("GET without a token: %d", w.Code)
	}
}

func TestPreferWaitEndsTheWindow(t *testing.T) {
	t.Parallel()
	e := newJobEnv(t, never, func(c *Config) { c.SyncWait = time.Hour })
	w, m := do(t, e.h, "POST", "/scrape", `{"script_name":"slow"}`, with(tokenFor(t, "alice"), "Prefer", "wait=1, handling=lenient"))
	if w.Code != 202 || m["status"] != "queued" {
		t.Fatalf("got %d %v", w.Code, m)
	}
	if got := w.Header().Get("Preference-Applied"); got != "wait=1" {
		t.Errorf("Preference-Applied %q", got)
	}
	if until := e.fb.calls[0].WaitUntil(); until.Sub(e.fb.calls[0].Accepted) != time.Second {
		t.Errorf("the gateway waited until %v", until)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newJobEnv(t, never, nil)
	alice := with(tokenFor(t, "alice"), "Idempotency-Key", "order-42", "Prefer", "respond-async")
	body := `{"script_name":"slow","parameters":{"x":1}}`
	// Two racing requests with one key publish once and name one job.
	var wg sync.WaitGroup
	ids := make([]string, 2)
	codes := make([]int, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, m := do(t, e.h, "POST", "/scrape", body, alice)
			codes[i] = w.Code
			ids[i], _ = m["request_id"].(string)
		}()
	}
	wg.Wait()
	if codes[0] != 202 || codes[1] != 202 || ids[0] == "" || ids[0] != ids[1] {
		t.Fatalf("codes %v ids %v", codes, ids)
	}
	// The same body with other whitespace is the same request.
	if w, m := do(t, e.h, "POST", "/scrape", `{ "script_name": "slow", "parameters": {"x": 1} }`, alice); w.Code != 202 || m["request_id"] != ids[0] {
		t.Fatalf("replay: %d %v", w.Code, m)
	}
	if n := len(e.fb.calls); n != 1 {
		t.Fatalf("published %d tasks, want 1", n)
	}
	// Other body: refused. The same key of another client is another key.
	if w, m := do(t, e.h, "POST", "/scrape", `{"script_name":"slow","parameters":{"x":2}}`, alice); w.Code != 422 || m["error_code"] != "idempotency_conflict" {
		t.Fatalf("other body: %d %v", w.Code, m)
	}
	if w, m := do(t, e.h, "POST", "/scrape", body, with(tokenFor(t, "bob"), "Idempotency-Key", "order-42", "Prefer", "respond-async")); w.Code != 202 || m["request_id"] == ids[0] {
		t.Fatalf("bob's key: %d %v", w.Code, m)
	}
	// A finished job is answered with its result.
	finish(t, e.store, ids[0], "alice", `[1,2]`)
	if w, m := do(t, e.h, "POST", "/scrape", body, alice); w.Code != 200 || m["status"] != "completed" || len(m["data"].([]any)) != 2 {
		t.Fatalf("replay of a finished job: %d %v", w.Code, m)
	}
}

func TestBadPreferAndIdempotencyKeyAre400(t *testing.T) {
	t.Parallel()
	e := newJobEnv(t, completed, nil)
	alice := tokenFor(t, "alice")
	for name, h := range map[string][]string{
		"wait not a number":   {"Prefer", "wait=soon"},
		"wait negative":       {"Prefer", "wait=-5"},
		"wait without value":  {"Prefer", "wait"},
		"respond-async value": {"Prefer", "respond-async=yes"},
		"unclosed quote":      {"Prefer", `foo="bar`},
		"not a token":         {"Prefer", "re spond"},
		"empty key":           {"Idempotency-Key", ""},
		"long key":            {"Idempotency-Key", strings.Repeat("k", 256)},
		"control char key":    {"Idempotency-Key", "a\x01b"},
		"bad quoted key":      {"Idempotency-Key", `"abc`},
	} {
		w, m := do(t, e.h, "POST", "/scrape", `{"script_name":"echo"}`, with(alice, h...))
		if w.Code != 400 || m["error_code"] != "invalid_request" || !strings.Contains(m["error"].(string), h[0]) {
			t.Errorf("%s: %d %v", name, w.Code, m)
		}
	}
	if len(e.fb.calls) != 0 {
		t.Errorf("bad headers reached the broker")
	}
}

func TestCallbackURLGuard(t *testing.T) {
	t.Parallel()
	e := newJobEnv(t, never, nil)
	alice := with(tokenFor(t, "alice"), "Prefer", "respond-async")
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/hook", "https://evil.example.com/hook",
		"http://127.0.0.1:8080/", "ftp://hooks.example.com/", "https://hooks.example.com/" + strings.Repeat("a", 2048)} {
		w, m := do(t, e.h, "POST", "/scrape", `{"script_name":"echo","callback_url":"`+u+`"}`, alice)
		if w.Code != 422 || m["error_code"] != "invalid_request" || !strings.Contains(m["error"].(string), "callback_url") {
			t.Errorf("%.50s: %d %v", u, w.Code, m)
		}
	}
	if len(e.fb.calls) != 0 {
		t.Fatal("a refused callback_url reached the broker")
	}
	w, m := do(t, e.h, "POST", "/scrape", `{"script_name":"echo","callback_url":"https://hooks.example.com/cb"}`, alice)
	if w.Code != 202 || m["callback_url"] != "https://hooks.example.com/cb" || e.fb.calls[0].Job.CallbackURL != "https://hooks.example.com/cb" {
		t.Fatalf("public callback: %d %v", w.Code, m)
	}
	// EGRESS_ALLOW lets a private target through, as for scripts.
	e2 := newJobEnv(t, never, func(c *Config) {
		c.Egress, _ = netguard.ParsePolicy("10.1.0.0/16")
	})
	if w, m := do(t, e2.h, "POST", "/scrape", `{"script_name":"echo","callback_url":"http://10.1.2.3/hook"}`, alice); w.Code != 202 {
		t.Fatalf("allow-listed callback: %d %v", w.Code, m)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	e := newJobEnv(t, never, nil)
	alice := tokenFor(t, "alice")
	_, m := do(t, e.h, "POST", "/scrape", `{"script_name":"slow","callback_url":"https://hooks.example.com/cb"}`, with(alice, "Prefer", "respond-async"))
	id := m["request_id"].(string)
	w, m := do(t, e.h, "DELETE", "/jobs/"+id, "", alice)
	if w.Code != 200 || m["status"] != "cancelled" || m["error_code"] != "cancelled" || m["finished_at"] == nil {
		t.Fatalf("cancel: %d %v", w.Code, m)
	}
	// Repeating it is harmless: no second notice, no second callback.
	if w, m := do(t, e.h, "DELETE", "/jobs/"+id, "", alice); w.Code != 200 || m["status"] != "cancelled" {
		t.Fatalf("second cancel: %d %v", w.Code, m)
	}
	if len(e.fb.notified) != 1 || e.fb.notified[0] != id {
		t.Errorf("cancel notices %v", e.fb.notified)
	}
	if len(e.cbs.jobs) != 1 || e.cbs.jobs[0].Status != job.StatusCancelled {
		t.Errorf("callbacks enqueued %+v", e.cbs.jobs)
	}
	// A finished job stays as it finished.
	_, m = do(t, e.h, "POST", "/scrape", `{"script_name":"slow"}`, with(alice, "Prefer", "respond-async"))
	done := m["request_id"].(string)
	finish(t, e.store, done, "alice", `"ok"`)
	if w, m := do(t, e.h, "DELETE", "/jobs/"+done, "", alice); w.Code != 200 || m["status"] != "completed" || m["data"] != "ok" {
		t.Fatalf("cancel of a finished job: %d %v", w.Code, m)
	}
	if len(e.fb.notified) != 1 {
		t.Errorf("a finished job's cancel sent a notice")
	}
}

func TestJobStoreDown(t *testing.T) {
	t.Parallel()
	e := newJobEnv(t, completed, nil)
	e.h.jobs = downStore{e.store}
	alice := tokenFor(t, "alice")
	for name, h := range map[string][]string{
		"respond-async": {"Prefer", "respond-async"}, "idempotency key": {"Idempotency-Key", "k1"},
	} {
		w, m := do(t, e.h, "POST", "/scrape", `{"script_name":"echo"}`, with(alice, h...))
		if w.Code != 503 || m["error_code"] != "job_store_unavailable" || w.Header().Get("Retry-After") == "" {
			t.Errorf("%s: %d %v", name, w.Code, m)
		}
	}
	w, m := do(t, e.h, "POST", "/scrape", `{"script_name":"echo","callback_url":"https://hooks.example.com/x"}`, alice)
	if w.Code != 503 || m["error_code"] != "job_store_unavailable" {
		t.Errorf("callback_url: %d %v", w.Code, m)
	}
	// A plain scrape still runs, synchronously, without a job.
	w, m = do(t, e.h, "POST", "/scrape", `{"script_name":"echo","parameters":{"a":1},"timeout":600}`, alice)
	if w.Code != 200 || m["status"] != "completed" {
		t.Fatalf("sync scrape with the store down: %d %v", w.Code, m)
	}
	req := e.fb.calls[len(e.fb.calls)-1]
	if req.Job != nil || req.Deadline.Sub(req.Accepted) != e.h.cfg.SyncWait {
		t.Errorf("sync fallback: job %+v, deadline after %v", req.Job, req.Deadline.Sub(req.Accepted))
	}
	for _, method := range []string{"GET", "DELETE"} {
		if w, m := do(t, e.h, method, "/jobs/abc", "", alice); w.Code != 503 || m["error_code"] != "job_store_unavailable" || w.Header().Get("Retry-After") == "" {
			t.Errorf("%s /jobs with the store down: %d %v", method, w.Code, m)
		}
	}
}

func TestNoJobStore(t *testing.T) {
	t.Parallel()
	fb := &fakeBroker{answer: completed, connected: true}
	h := newTestHandler(t, fb)
	alice := tokenFor(t, "alice")
	if w, m := do(t, h, "POST", "/scrape", `{"script_name":"echo"}`, with(alice, "Prefer", "respond-async")); w.Code != 503 || m["error_code"] != "job_store_unavailable" {
		t.Errorf("respond-async without a store: %d %v", w.Code, m)
	}
	if w, m := do(t, h, "GET", "/jobs/abc", "", alice); w.Code != 503 || m["error_code"] != "job_store_unavailable" {
		t.Errorf("GET /jobs without a store: %d %v", w.Code, m)
	}
	if w, m := do(t, h, "POST", "/scrape", `{"script_name":"echo"}`, alice); w.Code != 200 || m["status"] != "completed" {
		t.Errorf("sync scrape without a store: %d %v", w.Code, m)
	}
}

func TestPublishFailureFailsTheJob(t *testing.T) {
	t.Parallel()
	e := newJobEnv(t, func(contract.Request) (*contract.Reply, error) { return nil, broker.ErrUnavailable }, nil)
	alice := tokenFor(t, "alice")
	w, m := do(t, e.h, "POST", "/scrape", `{"script_name":"echo"}`, with(alice, "Prefer", "respond-async"))
	if w.Code != 503 || m["error_code"] != "broker_unavailable" {
		t.Fatalf("got %d %v", w.Code, m)
	}
	j, err := e.store.Get(context.Background(), m["request_id"].(string), "alice")
	if err != nil || j.Status != job.StatusFailed || j.Error == nil || j.Error.Code != contract.CodeBrokerUnavailable {
		t.Fatalf("the job is %+v, %v; want failed broker_unavailable, so no worker runs it later", j, err)
	}
}

func TestClaimCheckedResults(t *testing.T) {
	t.Parallel()
	var store *job.Memory
	answer := func(req contract.Request) (*contract.Reply, error) {
		data := []byte(req.Parameters)
		key, err := store.PutResult(context.Background(), req.RequestID, data)
		if err != nil {
			return nil, err
		}
		return &contract.Reply{Version: contract.Version, RequestID: req.RequestID, Status: contract.StatusCompleted,
			ResultKey: key, ResultSize: int64(len(data)), WorkerID: "w1"}, nil
	}
	e := newJobEnv(t, answer, func(c *Config) { c.InlineResultBytes = 64 })
	store = e.store
	alice := tokenFor(t, "alice")
	w, m := do(t, e.h, "POST", "/scrape", `{"script_name":"big","parameters":{"k":"small"}}`, alice)
	if w.Code != 200 || m["data"].(map[string]any)["k"] != "small" || m["data_url"] != nil {
		t.Fatalf("small claim-checked result: %d %v", w.Code, m)
	}
	big := strings.Repeat("x", 100)
	w, m = do(t, e.h, "POST", "/scrape", `{"script_name":"big","parameters":{"k":"`+big+`"}}`, alice)
	if url, _ := m["data_url"].(string); w.Code != 200 || m["data"] != nil || !strings.Contains(url, "results/") || m["result_size"] != float64(len(big)+8) {
		t.Fatalf("large claim-checked result: %d %v", w.Code, m)
	}
	// The job read from the store answers the same way.
	id := m["request_id"].(string)
	j, _ := e.store.Get(context.Background(), id, "alice")
	key, _ := e.store.PutResult(context.Background(), id, []byte(`{"k":"`+big+`"}`))
	j.Status, j.FinishedAt, j.Result = job.StatusCompleted, time.Now(), &job.Result{Key: key, Size: int64(len(big) + 8)}
	if _, _, err := e.store.Finish(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	if w, m := do(t, e.h, "GET", "/jobs/"+id, "", alice); w.Code != 200 || m["data"] != nil || m["data_url"] == nil {
		t.Fatalf("GET of a large result: %d %v", w.Code, m)
	}
}

func TestParsePrefer(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]preferences{
		"respond-async":                        {respondAsync: true},
		"Respond-Async, wait=10":               {respondAsync: true, wait: 10 * time.Second, hasWait: true},
		"wait = 5":                             {wait: 5 * time.Second, hasWait: true},
		`wait="7"`:                             {wait: 7 * time.Second, hasWait: true},
		"wait=3, wait=9":                       {wait: 3 * time.Second, hasWait: true}, // the first counts
		"handling=strict; foo=\"a,b\", wait=2": {wait: 2 * time.Second, hasWait: true},
		"return=minimal":                       {},
		", ,respond-async":                     {respondAsync: true},
		"wait=99999999999999999999999":         {wait: maxPreferWait, hasWait: true},
	} {
		got, err := parsePrefer([]string{in})
		if err != nil || got != want {
			t.Errorf("parsePrefer(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"wait=x", "wait=1.5", "wait", "respond-async=1", `a="b`, "a b", "=1", `a="\`} {
		if got, err := parsePrefer([]string{in}); err == nil {
			t.Errorf("parsePrefer(%q) = %+v, want an error", in, got)
		}
	}
}

// FuzzParsePrefer: the header is untrusted input; the parser must never panic, and what it accepts is in
// range.
func FuzzParsePrefer(f *testing.F) {
	for _, s := range []string{"respond-async", "wait=10", `respond-async, wait="5"; x=y`, `a="\"", b`, "wait=99999999999999999999", ",,", `x="`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePrefer([]string{s})
		if err != nil {
			return
		}
		if p.wait < 0 || p.wait > maxPreferWait || (p.wait != 0 && !p.hasWait) {
			t.Fatalf("parsePrefer(%q) = %+v", s, p)
		}
		if a := p.applied(p.wait); (a != "") != (p.respondAsync || p.hasWait) {
			t.Fatalf("applied(%q) = %q", s, a)
		}
	})
}

// A key claimed by a request that then failed before recording its job is taken over by the next request
// with that key: the job runs once, under the claimed id.
func TestIdempotencyKeyOfALostRequestIsTakenOver(t *testing.T) {
	t.Parallel()
	e := newJobEnv(t, never, nil)
	body := `{"script_name":"slow","parameters":{"x":1}}`
	b, err := decodeScrapeBody([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	in, err := e.h.validateScrape(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.store.Claim(context.Background(), "alice", "k-lost", bodyHash(in), "lost-request"); err != nil {
		t.Fatal(err)
	}
	w, m := do(t, e.h, "POST", "/scrape", body, with(tokenFor(t, "alice"), "Idempotency-Key", "k-lost", "Prefer", "respond-async"))
	if w.Code != 202 || m["request_id"] != "lost-request" || w.Header().Get("Location") != "/jobs/lost-request" {
		t.Fatalf("got %d %v %v", w.Code, w.Header(), m)
	}
	if len(e.fb.calls) != 1 || e.fb.calls[0].RequestID != "lost-request" {
		t.Fatalf("published %d tasks (%v), want one for lost-request", len(e.fb.calls), e.fb.calls)
	}
	if j, err := e.store.Get(context.Background(), "lost-request", "alice"); err != nil || j.Status != job.StatusQueued {
		t.Fatalf("job %+v, %v", j, err)
	}
}

// A job still queued or running well past its deadline was lost (its task dead-lettered after repeated
// worker failures, or expired in the queue): its reader finishes it as failed (worker_lost), once, with its
// callback, so no client polls it forever; a worker that ends it later changes nothing.
func TestLostJobIsFinishedByItsReader(t *testing.T) {
	t.Parallel()
	e := newJobEnv(t, never, nil)
	alice := tokenFor(t, "alice")
	_, m := do(t, e.h, "POST", "/scrape", `{"script_name":"slow","timeout":5,"callback_url":"https://hooks.example.com/cb"}`,
		with(alice, "Prefer", "respond-async"))
	id := m["request_id"].(string)
	j, err := e.store.Get(t.Context(), id, "alice")
	if err != nil || j.Deadline.IsZero() || !j.Deadline.After(j.CreatedAt) {
		t.Fatalf("the job records no deadline after its creation: %+v, %v", j, err)
	}
	var mu sync.Mutex
	clock := j.Deadline.Add(lostJobMargin - time.Second)
	e.h.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	if w, m := do(t, e.h, "GET", "/jobs/"+id, "", alice); w.Code != 200 || m["status"] != "queued" {
		t.Fatalf("within the margin after the deadline: %d %v, want still queued", w.Code, m)
	}
	mu.Lock()
	clock = j.Deadline.Add(lostJobMargin + time.Second)
	mu.Unlock()
	for range 2 {
		w, m := do(t, e.h, "GET", "/jobs/"+id, "", alice)
		msg, _ := m["error"].(string)
		if w.Code != 200 || m["status"] != "failed" || m["error_code"] != "worker_lost" || m["finished_at"] == nil ||
			!strings.Contains(msg, "deadline") {
			t.Fatalf("past the margin: %d %v, want failed worker_lost", w.Code, m)
		}
	}
	if got, err := e.store.Get(t.Context(), id, "alice"); err != nil || got.Status != job.StatusFailed {
		t.Errorf("the store holds %v (%v), want the job failed", got.Status, err)
	}
	e.cbs.mu.Lock()
	callbacks := len(e.cbs.jobs)
	e.cbs.mu.Unlock()
	if callbacks != 1 {
		t.Errorf("%d callbacks enqueued, want 1", callbacks)
	}
	// A worker recording the end afterwards loses the conditional write: the job stays failed.
	late := j
	late.Status, late.FinishedAt, late.Result = job.StatusCompleted, time.Now().UTC(), &job.Result{Data: json.RawMessage(`"late"`), Size: 6}
	if final, won, err := e.store.Finish(t.Context(), late); err != nil || won || final.Status != job.StatusFailed {
		t.Errorf("a late finish: won %v, final %v, %v; want lost to the failed state", won, final.Status, err)
	}
}
