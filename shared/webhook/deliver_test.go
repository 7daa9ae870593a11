package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/brokertest"
	"github.com/scrapeplatform/platform/shared/job"
	"github.com/scrapeplatform/platform/shared/s3test"
)

// The integration tests below run against the real RabbitMQ (brokertest), a real versitygw for the job
// store (s3test), and real HTTP receivers on 127.0.0.1.

// testGuard is the tests' address check: it refuses the metadata range and 10.0.0.0/8 (what the shared
// SSRF guard refuses too) and allows the rest, loopback included, so receivers on 127.0.0.1 are reachable.
func testGuard(extra ...netip.Prefix) func(netip.Addr, int) error {
	refused := append([]netip.Prefix{netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("10.0.0.0/8")}, extra...)
	return func(a netip.Addr, _ int) error {
		for _, p := range refused {
			if p.Contains(a) {
				return fmt.Errorf("%s is in the forbidden range %s", a, p)
			}
		}
		return nil
	}
}

// fakeMetrics records every Delivery call.
type fakeMetrics struct {
	mu    sync.Mutex
	calls []string
}

func (m *fakeMetrics) Delivery(outcome string, attempt int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, fmt.Sprintf("%s/%d", outcome, attempt))
}

func (m *fakeMetrics) String() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.Join(m.calls, " ")
}

// harness is one test's broker queues, job store, publisher and outbox.
type harness struct {
	t      testing.TB
	url    string
	task   string
	q      Queues
	store  *job.S3
	outbox *Outbox
	secret Secret
}

var bucketSeq atomic.Int64

func newHarness(t testing.TB, s3 *s3test.Server) *harness {
	t.Helper()
	url := brokertest.URL(t)
	task := brokertest.Name("test-webhooks")
	q := NewQueues(task)
	queues := []string{q.Main, q.Dead}
	for _, d := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 400 * time.Millisecond,
		600 * time.Millisecond, 800 * time.Millisecond, 1200 * time.Millisecond, 1600 * time.Millisecond, time.Second, 2 * time.Second,
		3 * time.Second, 4 * time.Second, time.Hour} {
		queues = append(queues, q.Delay(d))
	}
	brokertest.DeleteQueues(t, url, queues, nil)

	bucket := fmt.Sprintf("webhooks-%d", bucketSeq.Add(1))
	s3.CreateBucket(t, bucket, false)
	cfg, err := job.Load(s3.Getenv("JOB_STORE_BUCKET=" + bucket))
	if err != nil {
		t.Fatal(err)
	}
	store, err := job.NewS3(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	pub := broker.NewPublisher(broker.PublisherConfig{URL: url, Name: task + "/outbox"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = pub.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, url: url, task: task, q: q, store: store, outbox: NewOutbox(pub, task), secret: secret}
}

// testSchedule retries after 200 ms, 400 ms, 800 ms, then every 1.6 s, within total.
func testSchedule(total time.Duration) Schedule {
	return Schedule{Initial: []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond},
		Factor: 2, MaxDelay: 1600 * time.Millisecond, Total: total, Jitter: 0.2}
}

// deliverer starts a deliverer; the returned stop ends it (Run, then Shutdown) and is also called at
// cleanup.
func (h *harness) deliverer(cfg DelivererConfig) (*Deliverer, func()) {
	h.t.Helper()
	cfg.URL, cfg.Name, cfg.TaskQueue, cfg.Store = h.url, h.task+"/deliver", h.task, h.store
	if cfg.Secrets == nil {
		cfg.Secrets = []Secret{h.secret}
	}
	if cfg.CheckAddr == nil {
		cfg.CheckAddr = testGuard()
	}
	if cfg.Schedule.Initial == nil {
		cfg.Schedule = testSchedule(time.Minute)
	}
	cfg.Timeout = 5 * time.Second
	d, err := NewDeliverer(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer scancel()
			if err := d.Shutdown(sctx); err != nil {
				h.t.Errorf("deliverer shutdown: %v", err)
			}
		})
	}
	h.t.Cleanup(stop)
	return d, stop
}

// finishedJob records a job with callback as queued then completed in the store and returns the final job.
func (h *harness) finishedJob(id, callback string) job.Job {
	h.t.Helper()
	ctx := context.Background()
	created := time.Now().UTC().Truncate(time.Millisecond)
	q := job.Job{RequestID: id, Owner: "client-a", ScriptName: "demo", Status: job.StatusQueued, CreatedAt: created, CallbackURL: callback}
	if err := h.store.Create(ctx, q); err != nil {
		h.t.Fatal(err)
	}
	f := q
	f.Webhook = nil
	f.Status, f.StartedAt, f.FinishedAt = job.StatusCompleted, created.Add(time.Second), created.Add(2*time.Second)
	f.WorkerID, f.ExecutionTime = "worker-1", 1
	f.Result = &job.Result{Data: json.RawMessage(`{"title":"hello"}`), Size: 17}
	final, won, err := h.store.Finish(ctx, f)
	if err != nil || !won {
		h.t.Fatalf("finish: %v, won %v", err, won)
	}
	return final
}

// waitWebhook polls the job until its webhook state satisfies ok.
func (h *harness) waitWebhook(id string, what string, ok func(job.WebhookState) bool) job.WebhookState {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last job.Job
	for time.Now().Before(deadline) {
		j, err := h.store.Get(context.Background(), id, "client-a")
		if err != nil {
			h.t.Fatal(err)
		}
		last = j
		if j.Webhook != nil && ok(*j.Webhook) {
			return *j.Webhook
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("webhook state of %s never became %s; last %+v", id, what, last.Webhook)
	return job.WebhookState{}
}

// queueDepth returns the ready messages of queue; an error when it does not exist (yet).
func (h *harness) queueDepth(queue string) (int, error) {
	h.t.Helper()
	conn, err := amqp.Dial(h.url)
	if err != nil {
		h.t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		h.t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("inspect %s: %w", queue, err)
	}
	return q.Messages, nil
}

func (h *harness) waitDepth(queue string, want int) {
	h.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var n int
	var err error
	for time.Now().Before(deadline) {
		if n, err = h.queueDepth(queue); err == nil && n == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.t.Fatalf("queue %s never held %d messages (has %d, %v)", queue, want, n, err)
}

// receiver is an HTTP receiver on 127.0.0.1 that fails the first failures requests with 500, then
// accepts the ones whose signature verifies.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	failures int
	requests []*http.Request
	bodies   [][]byte
	accepted int
	verifyFn func(http.Header, []byte) error
}

func newReceiver(t testing.TB, failures int, secrets []Secret) *receiver {
	r := &receiver{failures: failures}
	r.verifyFn = func(h http.Header, body []byte) error { return Verify(secrets, h, body, time.Now()) }
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.requests = append(r.requests, req)
		r.bodies = append(r.bodies, body)
		if len(r.requests) <= r.failures {
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		if err := r.verifyFn(req.Header, body); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		r.accepted++
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) counts() (requests, accepted int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.requests), r.accepted
}

func startStore(t *testing.T) *s3test.Server { return s3test.Start(t) }

func TestDeliverer(t *testing.T) {
	s3 := startStore(t)

	t.Run("fails twice then accepts", func(t *testing.T) {
		h := newHarness(t, s3)
		rotatedOut := newSecret(t)
		recv := newReceiver(t, 2, []Secret{h.secret})
		metrics := &fakeMetrics{}
		h.deliverer(DelivererConfig{Metrics: metrics, Secrets: []Secret{h.secret, rotatedOut}})
		final := h.finishedJob("req-twice", recv.URL+"/hook?src=test")
		if err := h.outbox.Enqueue(context.Background(), final); err != nil {
			t.Fatal(err)
		}
		state := h.waitWebhook("req-twice", "delivered", func(w job.WebhookState) bool { return w.Status == job.WebhookDelivered })
		if state.Attempts != 3 || state.LastError != "" || state.UpdatedAt.IsZero() {
			t.Errorf("state %+v; want delivered after 3 attempts, no last error", state)
		}
		// Everything settled: nothing left to retry, so the count below is final.
		h.waitDepth(h.q.Main, 0)
		for _, d := range testSchedule(time.Minute).DelayLevels() {
			h.waitDepth(h.q.Delay(d), 0)
		}
		if n, err := h.queueDepth(h.q.Dead); n != 0 || err != nil {
			t.Errorf("%d dead letters, %v", n, err)
		}
		requests, accepted := recv.counts()
		if requests != 3 || accepted != 1 {
			t.Fatalf("receiver saw %d requests, accepted %d; want 3 and 1", requests, accepted)
		}
		recv.mu.Lock()
		defer recv.mu.Unlock()
		for i, req := range recv.requests {
			if req.Method != http.MethodPost || req.URL.Path != "/hook" || req.URL.Query().Get("src") != "test" ||
				req.Header.Get("Content-Type") != "application/json" || req.Header.Get(HeaderID) != "req-twice" {
				t.Errorf("request %d: %s %s, content type %q, id %q", i+1, req.Method, req.URL, req.Header.Get("Content-Type"), req.Header.Get(HeaderID))
			}
			if string(recv.bodies[i]) != string(recv.bodies[0]) {
				t.Errorf("attempt %d sent another body than the first", i+1)
			}
		}
		last := recv.requests[2]
		// The Go verifier accepts it with the current key, and with the key being rotated out (two signatures).
		if err := Verify([]Secret{h.secret}, last.Header, recv.bodies[2], time.Now()); err != nil {
			t.Errorf("Verify with the current secret: %v", err)
		}
		if err := Verify([]Secret{rotatedOut}, last.Header, recv.bodies[2], time.Now()); err != nil {
			t.Errorf("Verify with the older secret: %v", err)
		}
		if n := len(strings.Fields(last.Header.Get(HeaderSignature))); n != 2 {
			t.Errorf("%d signatures with two secrets", n)
		}
		if err := Verify([]Secret{newSecret(t)}, last.Header, recv.bodies[2], time.Now()); !errors.Is(err, ErrNoMatch) {
			t.Errorf("Verify with a stranger's secret: %v", err)
		}
		var body map[string]json.RawMessage
		if err := json.Unmarshal(recv.bodies[2], &body); err != nil {
			t.Fatal(err)
		}
		for _, absent := range []string{"owner", "webhook"} {
			if _, ok := body[absent]; ok {
				t.Errorf("delivered body has %q: %s", absent, recv.bodies[2])
			}
		}
		var got job.Job
		if err := json.Unmarshal(recv.bodies[2], &got); err != nil {
			t.Fatal(err)
		}
		if got.RequestID != final.RequestID || got.Status != job.StatusCompleted || string(got.Result.Data) != `{"title":"hello"}` ||
			got.CallbackURL != final.CallbackURL || !got.FinishedAt.Equal(final.FinishedAt) {
			t.Errorf("delivered job %+v; want the final job %+v", got, final)
		}
		if m := metrics.String(); m != "retry/1 retry/2 delivered/3" {
			t.Errorf("metrics %q", m)
		}
	})

	t.Run("deliverer restarted between attempts", func(t *testing.T) {
		h := newHarness(t, s3)
		recv := newReceiver(t, 2, []Secret{h.secret})
		sched := Schedule{Initial: []time.Duration{time.Second, 2 * time.Second}, Factor: 2, MaxDelay: 4 * time.Second, Total: time.Minute, Jitter: 0.2}
		_, stop := h.deliverer(DelivererConfig{Schedule: sched})
		final := h.finishedJob("req-restart", recv.URL)
		if err := h.outbox.Enqueue(context.Background(), final); err != nil {
			t.Fatal(err)
		}
		h.waitWebhook("req-restart", "pending after attempt 1", func(w job.WebhookState) bool {
			return w.Status == job.WebhookPending && w.Attempts == 1 && strings.Contains(w.LastError, "HTTP 500")
		})
		stop()
		// With no deliverer running, the retry waits in the broker and comes back to the main queue.
		h.waitDepth(h.q.Main, 1)
		if requests, _ := recv.counts(); requests != 1 {
			t.Fatalf("receiver saw %d requests while no deliverer ran; want 1", requests)
		}
		h.deliverer(DelivererConfig{Schedule: sched})
		state := h.waitWebhook("req-restart", "delivered", func(w job.WebhookState) bool { return w.Status == job.WebhookDelivered })
		if state.Attempts != 3 {
			t.Errorf("delivered after %d attempts; want 3", state.Attempts)
		}
		h.waitDepth(h.q.Main, 0)
		for _, d := range sched.DelayLevels() {
			h.waitDepth(h.q.Delay(d), 0)
		}
		if requests, accepted := recv.counts(); requests != 3 || accepted != 1 {
			t.Errorf("receiver saw %d requests, accepted %d; want 3 and 1", requests, accepted)
		}
		recv.mu.Lock()
		defer recv.mu.Unlock()
		if err := Verify([]Secret{h.secret}, recv.requests[2].Header, recv.bodies[2], time.Now()); err != nil {
			t.Errorf("Verify: %v", err)
		}
	})

	t.Run("always failing ends dead-lettered", func(t *testing.T) {
		h := newHarness(t, s3)
		recv := newReceiver(t, 1<<30, nil)
		metrics := &fakeMetrics{}
		sched := Schedule{Initial: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, Factor: 2,
			MaxDelay: 400 * time.Millisecond, Total: 3 * time.Second, Jitter: 0.2}
		d, _ := h.deliverer(DelivererConfig{Schedule: sched, Metrics: metrics})
		final := h.finishedJob("req-dead", recv.URL)
		if err := h.outbox.Enqueue(context.Background(), final); err != nil {
			t.Fatal(err)
		}
		state := h.waitWebhook("req-dead", "failed", func(w job.WebhookState) bool { return w.Status == job.WebhookFailed })
		if !strings.Contains(state.LastError, "gave up") || !strings.Contains(state.LastError, "HTTP 500") {
			t.Errorf("last_error %q; want it to say it gave up after HTTP 500s", state.LastError)
		}
		if strings.Contains(state.LastError, strings.TrimPrefix(h.secret.Encode(), SecretPrefix)) {
			t.Error("last_error shows the signing secret")
		}
		h.waitDepth(h.q.Dead, 1)
		requests, _ := recv.counts()
		if state.Attempts < 3 || requests != state.Attempts {
			t.Errorf("%d attempts recorded, %d requests seen; want equal and at least 3", state.Attempts, requests)
		}
		// The dead letter holds the delivery, its attempts and why.
		_, ch := brokertest.Channel(t, h.url)
		dl, ok, err := ch.Get(h.q.Dead, true)
		if err != nil || !ok {
			t.Fatalf("get the dead letter: %v, %v", ok, err)
		}
		m, err := decodeMessage(dl.Body)
		if err != nil || m.RequestID != "req-dead" || m.Attempt != state.Attempts || !strings.Contains(m.LastError, "gave up") {
			t.Errorf("dead letter %+v, %v", m, err)
		}
		calls := metrics.String()
		if !strings.HasPrefix(calls, "retry/1 retry/2") || !strings.HasSuffix(calls, fmt.Sprintf("failed/%d", min(state.Attempts, d.MaxAttemptLabel()))) {
			t.Errorf("metrics %q", calls)
		}
	})

	t.Run("refused addresses get no connection", func(t *testing.T) {
		h := newHarness(t, s3)
		// A listener that counts the connections it accepts, reached as localhost: the check must refuse
		// the resolved address at connect time (the URL holds a name, not an IP).
		var accepted atomic.Int64
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				accepted.Add(1)
				c.Close()
			}
		}()
		port := ln.Addr().(*net.TCPAddr).Port
		metrics := &fakeMetrics{}
		guard := testGuard(netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"))
		h.deliverer(DelivererConfig{Metrics: metrics, CheckAddr: guard})
		for _, c := range []struct{ id, url, want string }{
			{"req-metadata", "http://169.254.169.254/latest/meta-data/", "169.254.169.254 is in the forbidden range 169.254.0.0/16"},
			{"req-private", "http://10.1.2.3:8080/hook", "10.1.2.3 is in the forbidden range 10.0.0.0/8"},
			{"req-rebind", fmt.Sprintf("http://localhost:%d/hook", port), "is in the forbidden range"},
		} {
			if err := h.outbox.Enqueue(context.Background(), h.finishedJob(c.id, c.url)); err != nil {
				t.Fatal(err)
			}
			state := h.waitWebhook(c.id, "failed", func(w job.WebhookState) bool { return w.Status == job.WebhookFailed })
			if state.Attempts != 1 || !strings.Contains(state.LastError, "refused by the address check") || !strings.Contains(state.LastError, c.want) {
				t.Errorf("%s: state %+v; want failed after 1 attempt, refused: %s", c.id, state, c.want)
			}
		}
		h.waitDepth(h.q.Dead, 3)
		if n := accepted.Load(); n != 0 {
			t.Errorf("the refused receiver accepted %d connections", n)
		}
		if m := metrics.String(); m != "refused/1 refused/1 refused/1" {
			t.Errorf("metrics %q", m)
		}
	})

	t.Run("redirects are not followed", func(t *testing.T) {
		h := newHarness(t, s3)
		target := newReceiver(t, 0, []Secret{h.secret})
		redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/stolen", http.StatusTemporaryRedirect)
		}))
		t.Cleanup(redirector.Close)
		sched := Schedule{Initial: []time.Duration{time.Hour}, Factor: 1, MaxDelay: time.Hour, Total: 2 * time.Hour, Jitter: 0}
		metrics := &fakeMetrics{}
		h.deliverer(DelivererConfig{Schedule: sched, Metrics: metrics})
		if err := h.outbox.Enqueue(context.Background(), h.finishedJob("req-redirect", redirector.URL)); err != nil {
			t.Fatal(err)
		}
		state := h.waitWebhook("req-redirect", "pending", func(w job.WebhookState) bool { return w.Status == job.WebhookPending && w.Attempts == 1 })
		if !strings.Contains(state.LastError, "HTTP 307") || !strings.Contains(state.LastError, "redirects are not followed") {
			t.Errorf("last_error %q", state.LastError)
		}
		h.waitDepth(h.q.Delay(time.Hour), 1)
		if requests, _ := target.counts(); requests != 0 {
			t.Errorf("the redirect target got %d requests", requests)
		}
		if m := metrics.String(); m != "retry/1" {
			t.Errorf("metrics %q", m)
		}
	})

	t.Run("a body too large for the message is read from the store", func(t *testing.T) {
		h := newHarness(t, s3)
		recv := newReceiver(t, 0, []Secret{h.secret})
		h.deliverer(DelivererConfig{})
		final := h.finishedJob("req-large", recv.URL)
		// A final job too large to carry: a second job, recorded with a big inline result.
		big := final
		big.RequestID = "req-large-2"
		big.Webhook = nil
		big.Status = job.StatusQueued
		big.FinishedAt, big.StartedAt, big.Result = time.Time{}, time.Time{}, nil
		if err := h.store.Create(context.Background(), big); err != nil {
			t.Fatal(err)
		}
		big.Status, big.FinishedAt = job.StatusCompleted, time.Now().UTC()
		big.Result = &job.Result{Data: json.RawMessage(`"` + strings.Repeat("x", MaxCarriedBody) + `"`), Size: MaxCarriedBody + 2}
		if _, _, err := h.store.Finish(context.Background(), big); err != nil {
			t.Fatal(err)
		}
		m, err := newMessage(big, time.Now())
		if err != nil || len(m.Body) != 0 || m.Owner != "client-a" {
			t.Fatalf("message of a large job: body %d bytes, owner %q, %v; want no body and the owner", len(m.Body), m.Owner, err)
		}
		if err := h.outbox.Enqueue(context.Background(), big); err != nil {
			t.Fatal(err)
		}
		h.waitWebhook("req-large-2", "delivered", func(w job.WebhookState) bool { return w.Status == job.WebhookDelivered && w.Attempts == 1 })
		recv.mu.Lock()
		defer recv.mu.Unlock()
		var got job.Job
		if len(recv.bodies) != 1 || json.Unmarshal(recv.bodies[0], &got) != nil || got.Result == nil || int64(len(got.Result.Data)) != big.Result.Size {
			t.Fatalf("receiver got %d bodies; want the large job once", len(recv.bodies))
		}
		if got.Owner != "" {
			t.Errorf("body shows the owner")
		}
	})

	t.Run("malformed messages are dead-lettered", func(t *testing.T) {
		h := newHarness(t, s3)
		metrics := &fakeMetrics{}
		h.deliverer(DelivererConfig{Metrics: metrics})
		h.waitDepth(h.q.Main, 0) // declared by the deliverer
		_, ch := brokertest.Channel(t, h.url)
		for _, body := range []string{`not json`, `{"request_id":"../x","callback_url":"http://a","attempt":1,"first_attempt_at":"2026-01-01T00:00:00Z","body":{}}`} {
			if err := ch.Publish("", h.q.Main, false, false, amqp.Publishing{Body: []byte(body)}); err != nil {
				t.Fatal(err)
			}
		}
		h.waitDepth(h.q.Dead, 2)
		if m := metrics.String(); m != "failed/1 failed/1" {
			t.Errorf("metrics %q", m)
		}
	})
}

// A message without a body whose job is gone from the store (past its retention) fails for good at once.
func TestDelivererJobGone(t *testing.T) {
	h := newHarness(t, startStore(t))
	metrics := &fakeMetrics{}
	h.deliverer(DelivererConfig{Metrics: metrics})
	h.waitDepth(h.q.Main, 0) // declared by the deliverer
	m := message{RequestID: "req-gone", Owner: "client-a", CallbackURL: "http://127.0.0.1:9/", Attempt: 1, FirstAttempt: time.Now()}
	data, _ := json.Marshal(m)
	_, ch := brokertest.Channel(t, h.url)
	if err := ch.Publish("", h.q.Main, false, false, amqp.Publishing{Body: data}); err != nil {
		t.Fatal(err)
	}
	h.waitDepth(h.q.Dead, 1)
	dl, ok, err := ch.Get(h.q.Dead, true)
	if err != nil || !ok {
		t.Fatalf("get the dead letter: %v, %v", ok, err)
	}
	back, err := decodeMessage(dl.Body)
	if err != nil || !strings.Contains(back.LastError, "not found") || back.Attempt != 1 {
		t.Errorf("dead letter %+v, %v; want attempt 1 and a not-found last_error", back, err)
	}
	if got := metrics.String(); got != "failed/1" {
		t.Errorf("metrics %q", got)
	}
}

// Two sides declare the queues in any order without conflict: the outbox first here, then the
// deliverer, then the outbox of another publisher.
func TestQueuesDeclaredByBothSides(t *testing.T) {
	h := newHarness(t, startStore(t))
	recv := newReceiver(t, 0, []Secret{h.secret})
	if err := h.outbox.Enqueue(context.Background(), h.finishedJob("req-early", recv.URL)); err != nil {
		t.Fatal(err)
	}
	h.waitDepth(h.q.Main, 1) // kept although no deliverer has run yet
	h.deliverer(DelivererConfig{})
	h.waitWebhook("req-early", "delivered", func(w job.WebhookState) bool { return w.Status == job.WebhookDelivered })
	pub := broker.NewPublisher(broker.PublisherConfig{URL: h.url, Name: h.task + "/outbox-2"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = pub.Run(ctx) }()
	if err := NewOutbox(pub, h.task).Enqueue(context.Background(), h.finishedJob("req-late", recv.URL)); err != nil {
		t.Fatal(err)
	}
	h.waitWebhook("req-late", "delivered", func(w job.WebhookState) bool { return w.Status == job.WebhookDelivered })
	// A job without a callback needs no delivery; a job not final yet cannot be delivered.
	if err := h.outbox.Enqueue(context.Background(), job.Job{RequestID: "req-none", Status: job.StatusCompleted}); err != nil {
		t.Errorf("Enqueue without a callback: %v", err)
	}
	if err := h.outbox.Enqueue(context.Background(), job.Job{RequestID: "req-q", Status: job.StatusRunning, CallbackURL: recv.URL}); err == nil {
		t.Error("Enqueue of a running job succeeded")
	}
}

// BenchmarkDeliver measures end-to-end deliveries: b.N finished jobs enqueued at once, each POSTed to a
// receiver on 127.0.0.1 that verifies it and answers 204, its state recorded in versitygw; reported as
// deliveries per second (default concurrency 8).
func BenchmarkDeliver(b *testing.B) {
	h := newHarness(b, s3test.Start(b))
	recv := newReceiver(b, 0, []Secret{h.secret})
	jobs := make([]job.Job, b.N)
	for i := range jobs {
		jobs[i] = h.finishedJob(fmt.Sprintf("req-bench-%d", i), recv.URL)
	}
	h.deliverer(DelivererConfig{})
	b.ResetTimer()
	start := time.Now()
	for _, j := range jobs {
		if err := h.outbox.Enqueue(context.Background(), j); err != nil {
			b.Fatal(err)
		}
	}
	for {
		if _, accepted := recv.counts(); accepted == b.N {
			break
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatal("deliveries did not finish")
		}
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "deliveries/s")
}
