package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/local/stack"
	"github.com/scrapeplatform/platform/shared/auth"
	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/job"
	"github.com/scrapeplatform/platform/shared/proctest"
	"github.com/scrapeplatform/platform/shared/s3test"
	"github.com/scrapeplatform/platform/test/rabbitmqtest"
	"github.com/scrapeplatform/platform/test/testkit"
)

// fakeWorker answers the task queue in this process, keeping jobs in the store as the worker does (the real
// worker's side of jobs is tested with the worker): a job task is recorded running, then, after
// parameters.sleep_ms, completed with the parameters as its value; a task whose job is already final (cancelled
// while queued) is not run. parameters.big_bytes makes a claim-checked result of that size.
type fakeWorker struct {
	store job.Store
	mu    sync.Mutex
	tasks map[string]int // deliveries by request id
}

func startFakeWorker(t *testing.T, amqpURL, queue string, store job.Store) *fakeWorker {
	t.Helper()
	w := &fakeWorker{store: store, tasks: map[string]int{}}
	ctx, stop := context.WithCancel(context.Background())
	topo := broker.NewTopology(queue)
	replies := broker.NewPublisher(broker.PublisherConfig{URL: amqpURL, Name: "e2e-fake-worker-replies"})
	go func() { _ = replies.Run(ctx) }()
	consumer := broker.NewConsumer(broker.ConsumerConfig{URL: amqpURL, Name: "e2e-fake-worker", Topology: topo, Prefetch: 16,
		Settler: broker.Settler{Publisher: replies, DeadLetterQueue: topo.DeadLetterQueue, ID: "e2e-fake-worker"}})
	var running sync.WaitGroup
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = consumer.Run(ctx, func(task *broker.Task) {
			running.Add(1)
			go func() {
				defer running.Done()
				w.handle(ctx, task)
			}()
		})
	}()
	t.Cleanup(func() {
		stop()
		<-done
		running.Wait()
		_ = consumer.Shutdown(context.Background())
	})
	return w
}

func (w *fakeWorker) deliveries(id string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.tasks[id]
}

func (w *fakeWorker) handle(ctx context.Context, task *broker.Task) {
	if task.Invalid != nil {
		_ = task.Settle(ctx, broker.Outcome{Action: broker.DeadLetter, Reason: task.Invalid.Error()})
		return
	}
	req := task.Request
	w.mu.Lock()
	w.tasks[req.RequestID]++
	w.mu.Unlock()
	var params struct {
		SleepMS  int `json:"sleep_ms"`
		BigBytes int `json:"big_bytes"`
	}
	_ = json.Unmarshal(req.Parameters, &params)
	reply := &contract.Reply{Version: contract.Version, RequestID: req.RequestID, Status: contract.StatusCompleted, WorkerID: "fake-worker",
		StartedAt: time.Now().UTC()}
	settle := func() { _ = task.Settle(ctx, broker.Outcome{Reply: reply, Action: broker.Ack}) }
	var j job.Job
	if req.Job != nil {
		j = job.Job{RequestID: req.RequestID, Owner: req.Job.Owner, ScriptName: req.ScriptName, Status: job.StatusRunning,
			CreatedAt: req.Accepted, StartedAt: reply.StartedAt, WorkerID: "fake-worker", CallbackURL: req.Job.CallbackURL}
		var fe *job.FinishedError
		if err := w.store.Start(ctx, j); errors.As(err, &fe) {
			reply.Status, reply.Error = contract.Status(fe.Job.Status), fe.Job.Error
			settle()
			return
		}
	}
	select {
	case <-time.After(time.Duration(params.SleepMS) * time.Millisecond):
	case <-ctx.Done():
		return
	}
	reply.FinishedAt = time.Now().UTC()
	data := []byte(req.Parameters)
	if params.BigBytes > 0 {
		data, _ = json.Marshal(strings.Repeat("x", params.BigBytes))
	}
	reply.ResultSize = int64(len(data))
	if req.Job != nil && params.BigBytes > 0 {
		key, err := w.store.PutResult(ctx, req.RequestID, data)
		if err != nil {
			reply.Status, reply.Error = contract.StatusFailed, &contract.Error{Code: contract.CodeInternal, Message: err.Error()}
		}
		reply.ResultKey = key
	} else {
		reply.Data = data
	}
	if req.Job != nil {
		j.Status, j.FinishedAt = job.Status(reply.Status), reply.FinishedAt
		j.Result = &job.Result{Data: reply.Data, Key: reply.ResultKey, Size: reply.ResultSize}
		if reply.Error != nil {
			j.Result, j.Error = nil, reply.Error
		}
		if final, won, err := w.store.Finish(ctx, j); err == nil && !won {
			reply = &contract.Reply{Version: contract.Version, RequestID: req.RequestID, Status: contract.Status(final.Status), Error: final.Error,
				WorkerID: "fake-worker", StartedAt: reply.StartedAt, FinishedAt: reply.FinishedAt}
		}
	}
	settle()
}

// jobsEnv is a gateway alone (no real workers: the fake worker answers its queue) with a job store on a real
// versitygw.
type jobsEnv struct {
	*env
	worker  *fakeWorker
	s3      *s3test.Server
	gateway *stack.Process
}

// startJobs brings up the gateway with a job store and the fake worker on its queue.
func startJobs(t *testing.T, extraEnv ...string) *jobsEnv {
	t.Helper()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "jobs", false)
	amqpURL := rabbitmqtest.URL(t)
	queue := testkit.Queue(t, amqpURL, "e2e-jobs")
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "RABBITMQ_URL=" + amqpURL, "RABBITMQ_TASK_QUEUE=" + queue,
		"JWT_SECRET=" + secret, "LOG_LEVEL=debug", "JOB_STORE_BUCKET=jobs", "S3_ENDPOINT_URL=" + srv.Endpoint, "S3_REGION=" + srv.Region,
		"S3_ACCESS_KEY=" + srv.AccessKey, "S3_SECRET_KEY=" + srv.SecretKey}
	base = append(base, extraEnv...)
	cfg, err := job.Load(srv.Getenv("JOB_STORE_BUCKET=jobs"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := job.NewS3(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	je := &jobsEnv{env: &env{token: issue(t, "e2e"), queue: queue, amqpURL: amqpURL, baseEnv: base}, s3: srv,
		worker: startFakeWorker(t, amqpURL, queue, store)}
	je.gateway, je.url = startGateway(t, base)
	return je
}

// startGateway runs gateway-local alone with env until the test ends, and returns it and its base URL.
func startGateway(t *testing.T, env []string) (*stack.Process, string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", proctest.FreePort(t))
	out := &proctest.Output{}
	p, err := stack.StartProcess(context.Background(), "gateway", filepath.Join(binDir, stack.GatewayBinary), nil,
		append(append([]string(nil), env...), "GATEWAY_ADDR="+addr), out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.Stop(30 * time.Second)
		if t.Failed() {
			t.Logf("gateway output:\n%s", proctest.Tail(out.String(), 20000))
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := stack.WaitReady(ctx, p, "http://"+addr+"/health", 45*time.Second); err != nil {
		t.Fatalf("gateway not ready: %v\n%s", err, out.String())
	}
	return p, "http://" + addr
}

func issue(t *testing.T, subject string) string {
	t.Helper()
	tok, err := auth.IssueHS256([]byte(secret), auth.Claims{Subject: subject}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// pollJob GETs the job until its status is final (a hang guard of two minutes).
func pollJob(t *testing.T, e *env, id, token string) response {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r := e.do(t, "GET", "/jobs/"+id, "", token)
		if r.Code != http.StatusOK {
			t.Fatalf("GET /jobs/%s: %d %s", id, r.Code, r.Raw)
		}
		if s := r.Body["status"]; s != "queued" && s != "running" {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %v after two minutes", id, r.Body["status"])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestJobsAsyncPollLongPollAndCancel(t *testing.T) {
	je := startJobs(t, "SCRAPE_SYNC_WAIT=2s")
	e, worker := je.env, je.worker
	async := []string{"Prefer", "respond-async"}

	// A short scrape is answered within the window, as before jobs.
	if r := e.doWith(t, "POST", "/scrape", `{"script_name":"echo","parameters":{"n":1},"timeout":60}`, e.token, nil); r.Code != 200 || r.Body["status"] != "completed" {
		t.Fatalf("sync scrape: %d %s", r.Code, r.Raw)
	}
	// A scrape longer than the window is answered 202; polling finds it completed.
	r := e.doWith(t, "POST", "/scrape", `{"script_name":"slow","parameters":{"sleep_ms":3000},"timeout":60}`, e.token, nil)
	id, _ := r.Body["request_id"].(string)
	if r.Code != 202 || r.Header.Get("Location") != "/jobs/"+id || r.Body["status"] == nil {
		t.Fatalf("long scrape: %d %v %s", r.Code, r.Header, r.Raw)
	}
	if done := pollJob(t, e, id, e.token); done.Body["status"] != "completed" || done.Body["data"].(map[string]any)["sleep_ms"] != float64(3000) || done.Body["finished_at"] == nil {
		t.Fatalf("polled: %s", done.Raw)
	}
	// Prefer: respond-async answers at once; a long poll returns as the job ends.
	r = e.doWith(t, "POST", "/scrape", `{"script_name":"slow","parameters":{"sleep_ms":1500}}`, e.token, async)
	if r.Code != 202 || r.Header.Get("Preference-Applied") != "respond-async" {
		t.Fatalf("respond-async: %d %v %s", r.Code, r.Header, r.Raw)
	}
	id = r.Body["request_id"].(string)
	var lp response
	for range 10 { // each long poll waits up to 20 s
		if lp = e.do(t, "GET", "/jobs/"+id+"?wait=20", "", e.token); lp.Body["status"] == "completed" {
			break
		}
	}
	if lp.Code != 200 || lp.Body["status"] != "completed" {
		t.Fatalf("long poll: %d %s", lp.Code, lp.Raw)
	}
	// Another client's job is not found, exactly like an unknown one.
	other := issue(t, "someone-else")
	for _, c := range []struct{ method, path, token string }{{"GET", "/jobs/" + id, other}, {"DELETE", "/jobs/" + id, other}, {"GET", "/jobs/no-such-job", e.token}} {
		if r := e.do(t, c.method, c.path, "", c.token); r.Code != 404 || r.Body["error_code"] != "job_not_found" {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.Code, r.Raw)
		}
	}
	for _, c := range []struct{ method, path, token string }{{"GET", "/jobs/" + id + "?wait=x", e.token}} {
		if r := e.do(t, c.method, c.path, "", c.token); r.Code != 400 {
			t.Errorf("%s %s: %d %s", c.method, c.path, r.Code, r.Raw)
		}
	}
	for _, method := range []string{"GET", "DELETE"} {
		if r := e.do(t, method, "/jobs/"+id, "", ""); r.Code != 401 {
			t.Errorf("%s without a token: %d %s", method, r.Code, r.Raw)
		}
	}
	// Cancel a long job: it ends cancelled at once, and stays so whatever its worker does later (stopping the
	// run is the worker's side, tested with the worker).
	r = e.doWith(t, "POST", "/scrape", `{"script_name":"slow","parameters":{"sleep_ms":60000}}`, e.token, async)
	id = r.Body["request_id"].(string)
	c := e.do(t, "DELETE", "/jobs/"+id, "", e.token)
	if c.Code != 200 || c.Body["status"] != "cancelled" || c.Body["error_code"] != "cancelled" {
		t.Fatalf("cancel: %d %s", c.Code, c.Raw)
	}
	if again := e.do(t, "DELETE", "/jobs/"+id, "", e.token); again.Code != 200 || again.Body["status"] != "cancelled" {
		t.Fatalf("second cancel: %d %s", again.Code, again.Raw)
	}
	if got := pollJob(t, e, id, e.token); got.Body["status"] != "cancelled" {
		t.Fatalf("after cancel: %s", got.Raw)
	}
	if worker.deliveries(id) != 1 {
		t.Errorf("the cancelled job's task was delivered %d times", worker.deliveries(id))
	}
}

func TestJobsIdempotencyCallbackGuardAndLargeResults(t *testing.T) {
	je := startJobs(t, "SCRAPE_SYNC_WAIT=2s", "GATEWAY_INLINE_RESULT_MB=1")
	e, worker := je.env, je.worker
	// Two racing requests with one Idempotency-Key: one job, one task.
	body := `{"script_name":"slow","parameters":{"sleep_ms":500,"order":42}}`
	key := []string{"Idempotency-Key", "order-42-" + e.queue, "Prefer", "respond-async"}
	var wg sync.WaitGroup
	answers := make([]response, 2)
	for i := range answers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = e.doWith(t, "POST", "/scrape", body, e.token, key)
		}()
	}
	wg.Wait()
	id, _ := answers[0].Body["request_id"].(string)
	for i, a := range answers {
		if (a.Code != 202 && a.Code != 200) || a.Body["request_id"] != id {
			t.Fatalf("racing request %d: %d %s (the other named %s)", i, a.Code, a.Raw, id)
		}
	}
	pollJob(t, e, id, e.token)
	if r := e.doWith(t, "POST", "/scrape", body, e.token, key); r.Code != 200 || r.Body["request_id"] != id || r.Body["status"] != "completed" {
		t.Fatalf("replay after the end: %d %s", r.Code, r.Raw)
	}
	if n := worker.deliveries(id); n != 1 {
		t.Fatalf("the job's task was delivered %d times, want 1", n)
	}
	if r := e.doWith(t, "POST", "/scrape", `{"script_name":"slow","parameters":{"order":43}}`, e.token, key); r.Code != 422 || r.Body["error_code"] != "idempotency_conflict" {
		t.Fatalf("same key, other body: %d %s", r.Code, r.Raw)
	}
	// Callback targets pass the SSRF guard: metadata and private addresses are refused at submission.
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://10.0.0.8/hook", "http://10.200.3.4:8080/hook"} {
		if r := e.doWith(t, "POST", "/scrape", `{"script_name":"echo","callback_url":"`+u+`"}`, e.token, nil); r.Code != 422 || !strings.Contains(r.Body["error"].(string), "callback_url") {
			t.Errorf("callback_url %s: %d %s", u, r.Code, r.Raw)
		}
	}
	// A claim-checked result within GATEWAY_INLINE_RESULT_MB is inlined; a larger one is a presigned URL that
	// serves it whole.
	r := e.doWith(t, "POST", "/scrape", `{"script_name":"big","parameters":{"big_bytes":300000}}`, e.token, nil)
	if r.Code != 200 || len(r.Body["data"].(string)) != 300000 {
		t.Fatalf("inlined claim-checked result: %d %.300s", r.Code, r.Raw)
	}
	r = e.doWith(t, "POST", "/scrape", `{"script_name":"big","parameters":{"big_bytes":1500000}}`, e.token, nil)
	url, _ := r.Body["data_url"].(string)
	if r.Code != 200 || r.Body["data"] != nil || url == "" {
		t.Fatalf("large result: %d %.300s", r.Code, r.Raw)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if want, _ := json.Marshal(strings.Repeat("x", 1500000)); resp.StatusCode != 200 || !bytes.Equal(got, want) {
		t.Fatalf("data_url: %d, %d bytes", resp.StatusCode, len(got))
	}
}

// Job state lives in the store: a gateway that never saw a job serves it (a restart, or another instance),
// and with the store stopped async submissions are refused with 503 while a sync scrape still works.
func TestJobsSurviveTheGatewayAndStoreOutage(t *testing.T) {
	je := startJobs(t, "SCRAPE_SYNC_WAIT=2s")
	e, srv := je.env, je.s3
	r := e.doWith(t, "POST", "/scrape", `{"script_name":"slow","parameters":{"sleep_ms":10}}`, e.token, []string{"Prefer", "respond-async"})
	if r.Code != 202 {
		t.Fatalf("submit: %d %s", r.Code, r.Raw)
	}
	id := r.Body["request_id"].(string)
	pollJob(t, e, id, e.token)
	if err := je.gateway.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	_, url := startGateway(t, e.baseEnv)
	e2 := &env{url: url, token: e.token}
	if got := e2.do(t, "GET", "/jobs/"+id, "", e.token); got.Code != 200 || got.Body["status"] != "completed" {
		t.Fatalf("after the gateway restarted: %d %s", got.Code, got.Raw)
	}

	srv.Stop()
	for _, h := range [][]string{{"Prefer", "respond-async"}, {"Idempotency-Key", "k-" + e.queue}} {
		if r := e2.doWith(t, "POST", "/scrape", `{"script_name":"echo"}`, e.token, h); r.Code != 503 || r.Body["error_code"] != "job_store_unavailable" || r.Header.Get("Retry-After") == "" {
			t.Errorf("%s with the store down: %d %s", h[0], r.Code, r.Raw)
		}
	}
	if r := e2.do(t, "GET", "/jobs/"+id, "", e.token); r.Code != 503 || r.Body["error_code"] != "job_store_unavailable" {
		t.Errorf("GET /jobs with the store down: %d %s", r.Code, r.Raw)
	}
	if r := e2.do(t, "POST", "/scrape", `{"script_name":"echo","parameters":{"still":"works"}}`, e.token); r.Code != 200 || r.Body["status"] != "completed" {
		t.Errorf("sync scrape with the store down: %d %s", r.Code, r.Raw)
	}
}
