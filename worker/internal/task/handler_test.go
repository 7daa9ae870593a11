package task

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/worker/internal/envcache"
	"github.com/scrapeplatform/platform/worker/internal/repository"
	"github.com/scrapeplatform/platform/worker/internal/runner"
)

// Unit tests with fakes for the broker side; the end-to-end tests in test/ run the real thing.

type ackLog struct {
	mu     sync.Mutex
	events []string
	done   chan struct{}
}

func newAckLog() *ackLog { return &ackLog{done: make(chan struct{}, 16)} }

func (a *ackLog) record(e string) error {
	a.mu.Lock()
	a.events = append(a.events, e)
	a.mu.Unlock()
	a.done <- struct{}{}
	return nil
}
func (a *ackLog) Ack(uint64, bool) error { return a.record("ack") }
func (a *ackLog) Nack(_ uint64, _ bool, requeue bool) error {
	if requeue {
		return a.record("requeue")
	}
	return a.record("dead-letter")
}
func (a *ackLog) Reject(_ uint64, requeue bool) error { return a.Nack(0, false, requeue) }

func (a *ackLog) wait(t *testing.T) string {
	t.Helper()
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		t.Fatal("delivery never settled")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.events[len(a.events)-1]
}

type fakeRepo struct{}

func (fakeRepo) Describe() string { return "fake" }
func (fakeRepo) Resolve(_ context.Context, name string) (repository.Script, error) {
	if name == "missing" {
		return repository.Script{}, repository.ErrNotFound
	}
	return repository.Script{Name: name, Dir: "/nowhere", Version: "v1"}, nil
}

type fakeRunner struct {
	run func(ctx context.Context, job runner.Job) (runner.Result, error)
}

func (f fakeRunner) Run(ctx context.Context, job runner.Job) (runner.Result, error) {
	return f.run(ctx, job)
}

type fakePublisher struct {
	mu   sync.Mutex
	fail error
	// failures, when above zero, is how many publishes fail with fail before they succeed (0: all fail).
	failures int
	attempts int
	replies  []contract.Reply
}

func (p *fakePublisher) Publish(_ context.Context, key string, msg amqp.Publishing) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attempts++
	if p.fail != nil && (p.failures == 0 || p.attempts <= p.failures) {
		return p.fail
	}
	var r contract.Reply
	_ = json.Unmarshal(msg.Body, &r)
	p.replies = append(p.replies, r)
	return nil
}

// recorder is the Metrics of the tests: it counts every call by name and labels.
type recorder struct {
	mu     sync.Mutex
	counts map[string]float64
}

func (r *recorder) add(key string, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts == nil {
		r.counts = map[string]float64{}
	}
	r.counts[key] += v
}

// get returns the count of key: "done <script> <status>", "ran <script>", "rejected <reason>", "slots",
// "busy", "reply failures".
func (r *recorder) get(key string) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[key]
}

func (r *recorder) TaskDone(script, _, status string, _ time.Duration) {
	r.add("done "+script+" "+status, 1)
}
func (r *recorder) ScriptRan(script string, _ time.Duration) { r.add("ran "+script, 1) }
func (r *recorder) TaskRejected(reason string)               { r.add("rejected "+reason, 1) }
func (r *recorder) Slots(n int)                              { r.add("slots", float64(n)) }
func (r *recorder) SlotTaken()                               { r.add("busy", 1) }
func (r *recorder) SlotFreed()                               { r.add("busy", -1) }

var _ Metrics = (*recorder)(nil)

// testWorker is a Handler fed with deliveries as the consumer feeds it: each becomes a broker.Task settled
// through settler (publisher, dead-letter queue, reply-failure hook), as cmd/worker wires them.
type testWorker struct {
	*Handler
	settler broker.Settler
}

// Handle hands d to the worker as a task.
func (w *testWorker) Handle(d amqp.Delivery) { w.Handler.Handle(broker.NewTask(d, w.settler)) }

func newWorker(t *testing.T, run func(ctx context.Context, job runner.Job) (runner.Result, error), pub *fakePublisher) (*testWorker, *recorder) {
	m := &recorder{}
	w := New(Config{ID: "w-test", Concurrency: 2, Repository: fakeRepo{}, Runner: fakeRunner{run},
		Metrics: m, Logger: slog.New(slog.DiscardHandler)})
	return &testWorker{w, broker.Settler{Publisher: pub, ID: "w-test", OnReplyFailure: func(error) { m.add("reply failures", 1) }}}, m
}

func delivery(t *testing.T, acks *ackLog, name string, timeout time.Duration, deadline time.Time) amqp.Delivery {
	req := contract.Request{Version: contract.Version, RequestID: "r-" + name, ScriptName: name,
		Budget: contract.Budget{Timeout: contract.SecondsOf(timeout), Deadline: deadline}}
	p, err := req.Publishing(time.Now().Add(-time.Hour)) // publish time in the past so expired requests encode
	if err != nil {
		t.Fatal(err)
	}
	return amqp.Delivery{Acknowledger: acks, Body: p.Body, CorrelationId: p.CorrelationId, ReplyTo: "amq.rabbitmq.reply-to.x", Type: p.Type}
}

func ok(context.Context, runner.Job) (runner.Result, error) {
	return runner.Result{Status: contract.StatusCompleted, Data: json.RawMessage(`{"ok":true}`), Duration: time.Millisecond}, nil
}

func TestCompletedTaskIsRepliedThenAcked(t *testing.T) {
	t.Parallel()
	pub := &fakePublisher{}
	w, m := newWorker(t, ok, pub)
	acks := newAckLog()
	w.Handle(delivery(t, acks, "good", time.Second, time.Now().Add(5*time.Second)))
	if got := acks.wait(t); got != "ack" {
		t.Fatalf("settled with %s", got)
	}
	if len(pub.replies) != 1 || pub.replies[0].Status != contract.StatusCompleted || pub.replies[0].WorkerID != "w-test" || pub.replies[0].ScriptVersion != "v1" {
		t.Fatalf("replies %+v", pub.replies)
	}
	if v := m.get("done good completed"); v != 1 {
		t.Fatalf("scraping_requests_total = %v", v)
	}
}

func TestTimeoutIsBoundedByDeadline(t *testing.T) {
	t.Parallel()
	var got time.Duration
	w, _ := newWorker(t, func(_ context.Context, job runner.Job) (runner.Result, error) {
		got = job.Timeout
		return ok(context.Background(), job)
	}, &fakePublisher{})
	now := time.Now()
	w.cfg.Now = func() time.Time { return now } // a stopped clock: the time left to the deadline is exact
	acks := newAckLog()
	// The caller allows 10 s of script time but will stop waiting in 2 s.
	w.Handle(delivery(t, acks, "good", 10*time.Second, now.Add(2*time.Second)))
	acks.wait(t)
	if want := 2*time.Second - contract.ReplyMargin; got != want {
		t.Fatalf("script timeout %v; want %v, the 2 s left to the deadline less the reply margin", got, want)
	}
}

func TestUnknownScriptRepliesFailed(t *testing.T) {
	t.Parallel()
	pub := &fakePublisher{}
	w, m := newWorker(t, ok, pub)
	acks := newAckLog()
	w.Handle(delivery(t, acks, "missing", time.Second, time.Now().Add(5*time.Second)))
	if got := acks.wait(t); got != "ack" {
		t.Fatalf("settled with %s", got)
	}
	if r := pub.replies[0]; r.Status != contract.StatusFailed || r.Error.Code != contract.CodeScriptNotFound {
		t.Fatalf("reply %+v", r)
	}
	if v := m.get("done " + UnknownScript + " failed"); v != 1 {
		t.Fatalf("unknown scripts must share one label, got %v", v)
	}
}

func TestExpiredAndInvalidTasksAreDeadLettered(t *testing.T) {
	t.Parallel()
	ran := false
	pub := &fakePublisher{}
	w, m := newWorker(t, func(ctx context.Context, job runner.Job) (runner.Result, error) { ran = true; return ok(ctx, job) }, pub)
	acks := newAckLog()
	w.Handle(delivery(t, acks, "good", time.Second, time.Now().Add(-time.Second)))
	if got := acks.wait(t); got != "dead-letter" {
		t.Fatalf("expired task settled with %s", got)
	}
	w.Handle(amqp.Delivery{Acknowledger: acks, Body: []byte(`{"version":1,"request_id":"bad","script_name":"../x"}`), CorrelationId: "bad", ReplyTo: "amq.rabbitmq.reply-to.x"})
	if got := acks.wait(t); got != "dead-letter" {
		t.Fatalf("invalid task settled with %s", got)
	}
	if ran {
		t.Fatal("a script ran for an expired or invalid task")
	}
	if len(pub.replies) != 1 || pub.replies[0].Error.Code != contract.CodeInvalidRequest || pub.replies[0].RequestID != "bad" {
		t.Fatalf("invalid task should get an invalid_request reply: %+v", pub.replies)
	}
	if m.get("rejected expired") != 1 || m.get("rejected invalid") != 1 {
		t.Fatal("rejections not counted")
	}
}

// A reply the broker refuses for a while (a memory alarm) is retried, not requeued: the task is acked once
// the reply is out, and the script runs once.
func TestReplyFailureIsRetriedUntilItGoesOut(t *testing.T) {
	t.Parallel()
	pub := &fakePublisher{fail: errors.New("the broker refuses new messages for now"), failures: 4}
	runs := 0
	w, m := newWorker(t, func(ctx context.Context, job runner.Job) (runner.Result, error) {
		runs++
		return ok(ctx, job)
	}, pub)
	acks := newAckLog()
	w.Handle(delivery(t, acks, "good", time.Second, time.Now().Add(20*time.Second)))
	if got := acks.wait(t); got != "ack" {
		t.Fatalf("settled with %s, want ack after the reply went out", got)
	}
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if pub.attempts != 5 || len(pub.replies) != 1 || pub.replies[0].Status != contract.StatusCompleted || runs != 1 {
		t.Fatalf("%d publish attempts, replies %+v, %d runs; want 5 attempts, one completed reply, one run", pub.attempts, pub.replies, runs)
	}
	if got := m.get("reply failures"); got != 0 {
		t.Fatalf("reply failures = %v for a reply that went out", got)
	}
}

// A reply the broker cannot route (the caller's reply channel is gone) is given up at once, not retried
// until the deadline: the slot is free for the next task.
func TestUnroutableReplyIsNotRetried(t *testing.T) {
	t.Parallel()
	pub := &fakePublisher{fail: broker.ErrUnroutable}
	w, m := newWorker(t, ok, pub)
	acks := newAckLog()
	w.Handle(delivery(t, acks, "good", time.Second, time.Now().Add(20*time.Second)))
	if got := acks.wait(t); got != "ack" {
		t.Fatalf("settled with %s, want ack", got)
	}
	pub.mu.Lock()
	attempts := pub.attempts
	pub.mu.Unlock()
	if attempts != 1 || m.get("reply failures") != 1 {
		t.Fatalf("%d attempts, %v failures; want one attempt, one failure", attempts, m.get("reply failures"))
	}
}

// A reply that cannot go out before the caller's deadline is dropped and its task acked: nobody waits, and
// requeueing would only run the script again for nobody.
func TestReplyFailurePastTheDeadlineIsDropped(t *testing.T) {
	t.Parallel()
	pub := &fakePublisher{fail: errors.New("connection lost")}
	w, m := newWorker(t, ok, pub)
	acks := newAckLog()
	w.Handle(delivery(t, acks, "good", time.Second, time.Now().Add(1500*time.Millisecond)))
	if got := acks.wait(t); got != "ack" {
		t.Fatalf("settled with %s, want ack (the caller's deadline has passed)", got)
	}
	pub.mu.Lock()
	attempts := pub.attempts
	pub.mu.Unlock()
	if attempts < 2 || m.get("reply failures") != 1 {
		t.Fatalf("%d attempts, %v failures counted; want retries, then one failure", attempts, m.get("reply failures"))
	}
}

func TestShutdownRequeuesNewAndKilledWork(t *testing.T) {
	t.Parallel()
	started := make(chan struct{})
	w, m := newWorker(t, func(ctx context.Context, job runner.Job) (runner.Result, error) {
		close(started)
		<-ctx.Done() // a script that outlives the drain
		return runner.Result{}, ctx.Err()
	}, &fakePublisher{})
	acks := newAckLog()
	w.Handle(delivery(t, acks, "slow", 30*time.Second, time.Now().Add(40*time.Second)))
	<-started
	finished := make(chan error)
	drain, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	go func() { finished <- w.Shutdown(drain) }()
	if got := acks.wait(t); got != "requeue" {
		t.Fatalf("killed task settled with %s", got)
	}
	if err := <-finished; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if m.get("busy") != 0 || m.get("rejected requeued") != 1 {
		t.Fatalf("after shutdown: %v", m.counts)
	}
	// After shutdown began, new deliveries go straight back.
	w.Handle(delivery(t, acks, "good", time.Second, time.Now().Add(5*time.Second)))
	if got := acks.wait(t); got != "requeue" {
		t.Fatalf("delivery during shutdown settled with %s", got)
	}
}

func TestShutdownDrainsRunningWork(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	w, _ := newWorker(t, func(ctx context.Context, job runner.Job) (runner.Result, error) {
		close(started)
		<-release // finishes during the drain, ignoring nothing
		return ok(ctx, job)
	}, &fakePublisher{})
	acks := newAckLog()
	w.Handle(delivery(t, acks, "good", 30*time.Second, time.Now().Add(40*time.Second)))
	<-started
	finished := make(chan error)
	go func() { finished <- w.Shutdown(t.Context()) }() // no drain deadline: waits for the script
	close(release)
	if got := acks.wait(t); got != "ack" {
		t.Fatalf("drained task settled with %s", got)
	}
	if err := <-finished; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

func TestShutdownIsBoundedWhenAScriptIgnoresTheStop(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	h := New(Config{ID: "w-test", Concurrency: 1, Repository: fakeRepo{}, StopGrace: 50 * time.Millisecond,
		Runner: fakeRunner{func(ctx context.Context, job runner.Job) (runner.Result, error) {
			close(started)
			<-release // a runner that does not stop when told
			return ok(ctx, job)
		}}})
	w := &testWorker{h, broker.Settler{Publisher: &fakePublisher{}, ID: "w-test"}}
	w.Handle(delivery(t, newAckLog(), "stuck", 30*time.Second, time.Now().Add(40*time.Second)))
	<-started
	drain, cancel := context.WithCancel(t.Context())
	cancel()
	if err := h.Shutdown(drain); err == nil {
		t.Fatal("shutdown reported success while a task still ran")
	}
}

// slowEnvs is an environment cache whose build takes build on the handler's clock.
type slowEnvs struct {
	clock *time.Time
	build time.Duration
}

func (e slowEnvs) Get(context.Context, string) (*envcache.Lease, error) {
	*e.clock = e.clock.Add(e.build)
	return &envcache.Lease{}, nil
}

// An environment that is ready only after most of the budget went to building it is answered
// dependencies_installing (retry: it is ready now), not run for the sliver left and answered "timeout".
func TestEnvironmentReadyTooLateAsksForARetry(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "requirements.txt"), []byte("x==1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		build   time.Duration
		wantRun bool
	}{
		{build: 9 * time.Second, wantRun: false}, // 10 s budget, 9 s of it building: retry
		{build: 2 * time.Second, wantRun: true},  // most of the budget left: run
	} {
		now := time.Now()
		ran := false
		pub := &fakePublisher{}
		w := New(Config{ID: "w-test", Concurrency: 1, Repository: dirRepo{dir}, Environments: slowEnvs{&now, tc.build},
			Runner: fakeRunner{func(ctx context.Context, job runner.Job) (runner.Result, error) {
				ran = true
				return ok(ctx, job)
			}}, Now: func() time.Time { return now }})
		tw := &testWorker{w, broker.Settler{Publisher: pub, ID: "w-test"}}
		acks := newAckLog()
		tw.Handle(delivery(t, acks, "deps", 10*time.Second, now.Add(10*time.Second+contract.ReplyMargin)))
		acks.wait(t)
		if ran != tc.wantRun || len(pub.replies) != 1 {
			t.Fatalf("build %v: ran %v, replies %+v", tc.build, ran, pub.replies)
		}
		rep := pub.replies[0]
		if !tc.wantRun && (rep.Error == nil || rep.Error.Code != contract.CodeDependenciesInstalling) {
			t.Fatalf("build %v: reply %+v, want dependencies_installing", tc.build, rep)
		}
	}
}
