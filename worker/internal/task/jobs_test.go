package task

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/job"
	"github.com/scrapeplatform/platform/worker/internal/runner"
)

// Unit tests of the job paths that need a failing store: job.Memory with faults injected.

type faultyStore struct {
	*job.Memory
	startErr, finishErr error
	finishCalls         int
}

func (s *faultyStore) Start(ctx context.Context, j job.Job) error {
	if s.startErr != nil {
		return s.startErr
	}
	return s.Memory.Start(ctx, j)
}

func (s *faultyStore) Finish(ctx context.Context, j job.Job) (job.Job, bool, error) {
	s.finishCalls++
	if s.finishErr != nil {
		return job.Job{}, false, s.finishErr
	}
	return s.Memory.Finish(ctx, j)
}

func jobDelivery(t *testing.T, acks *ackLog, store *job.Memory) amqp.Delivery {
	t.Helper()
	now := time.Now()
	req := contract.Request{Version: contract.Version, RequestID: "r-job", ScriptName: "good",
		Budget: contract.NewJobBudget(now, 5*time.Second, time.Second, time.Minute, 0, time.Time{}),
		Job:    &contract.JobTicket{Owner: "alice"}}
	if store != nil {
		if err := store.Create(t.Context(), job.Job{RequestID: "r-job", Owner: "alice", ScriptName: "good", Status: job.StatusQueued, CreatedAt: req.Accepted}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := req.Publishing(now)
	if err != nil {
		t.Fatal(err)
	}
	return amqp.Delivery{Acknowledger: acks, Body: p.Body, CorrelationId: p.CorrelationId, ReplyTo: "amq.rabbitmq.reply-to.x", Type: p.Type}
}

func TestJobWithoutJobStore(t *testing.T) {
	t.Parallel()
	pub := &fakePublisher{}
	ran := false
	w, _ := newWorker(t, func(ctx context.Context, j runner.Job) (runner.Result, error) { ran = true; return ok(ctx, j) }, pub)
	acks := newAckLog()
	w.Handle(jobDelivery(t, acks, nil))
	if got := acks.wait(t); got != "ack" {
		t.Fatalf("settled with %s", got)
	}
	if ran || len(pub.replies) != 1 || pub.replies[0].Error == nil || pub.replies[0].Error.Code != contract.CodeInternal ||
		pub.replies[0].Error.Message != "this worker has no job store" {
		t.Fatalf("ran %v, replies %+v", ran, pub.replies)
	}
}

func TestJobStartTransientFailureRequeues(t *testing.T) {
	t.Parallel()
	pub := &fakePublisher{}
	ran := false
	w, m := newWorker(t, func(ctx context.Context, j runner.Job) (runner.Result, error) { ran = true; return ok(ctx, j) }, pub)
	mem := job.NewMemory(0, nil)
	w.cfg.Jobs = &faultyStore{Memory: mem, startErr: contract.Transiently(errors.New("s3 down"))}
	acks := newAckLog()
	w.Handle(jobDelivery(t, acks, mem))
	if got := acks.wait(t); got != "requeue" {
		t.Fatalf("settled with %s", got)
	}
	if ran || len(pub.replies) != 0 || m.get("rejected requeued") != 1 {
		t.Fatalf("ran %v, replies %+v", ran, pub.replies)
	}
}

func TestJobFinishFailureStillReplies(t *testing.T) {
	t.Parallel()
	pub := &fakePublisher{}
	w, _ := newWorker(t, ok, pub)
	mem := job.NewMemory(0, nil)
	store := &faultyStore{Memory: mem, finishErr: errors.New("access denied")} // not transient: one attempt
	w.cfg.Jobs = store
	acks := newAckLog()
	w.Handle(jobDelivery(t, acks, mem))
	if got := acks.wait(t); got != "ack" {
		t.Fatalf("settled with %s", got)
	}
	if len(pub.replies) != 1 || pub.replies[0].Status != contract.StatusCompleted || string(pub.replies[0].Data) != `{"ok":true}` {
		t.Fatalf("replies %+v", pub.replies)
	}
	if store.finishCalls != 1 {
		t.Fatalf("Finish called %d times", store.finishCalls)
	}
	if j, err := mem.Get(t.Context(), "r-job", "alice"); err != nil || j.Status != job.StatusRunning {
		t.Fatalf("job %+v, %v: want it left running", j, err)
	}
}

// A job's run gets the job result limit; a plain task's run keeps the runner's own (0).
func TestJobRunGetsTheJobResultLimit(t *testing.T) {
	t.Parallel()
	limits := make(chan int, 2)
	w, _ := newWorker(t, func(ctx context.Context, j runner.Job) (runner.Result, error) {
		limits <- j.MaxResultBytes
		return ok(ctx, j)
	}, &fakePublisher{})
	mem := job.NewMemory(0, nil)
	w.cfg.Jobs, w.cfg.MaxJobResultBytes = mem, 7<<20
	acks := newAckLog()
	w.Handle(jobDelivery(t, acks, mem))
	acks.wait(t)
	w.Handle(delivery(t, acks, "good", time.Second, time.Now().Add(5*time.Second)))
	acks.wait(t)
	if a, b := <-limits, <-limits; a+b != 7<<20 || a*b != 0 {
		t.Fatalf("result limits %d and %d; want 7 MiB for the job and 0 for the plain task", a, b)
	}
}

type fakeLeaser struct{}

func (fakeLeaser) Lease(context.Context, *broker.Task, string) error { return nil }
func (fakeLeaser) Period() time.Duration                             { return time.Minute }

// A task waiting for a slot (behind a long run) is requeued as soon as the worker stops taking tasks, so
// the consumer is not held until the slot frees (a StopTaking that comes first requeues it as it arrives).
func TestStopTakingRequeuesAWaitingTask(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	pub := &fakePublisher{}
	m := &recorder{}
	w := New(Config{ID: "w", Concurrency: 1, Repository: fakeRepo{}, Leaser: fakeLeaser{}, Metrics: m,
		Runner: fakeRunner{func(ctx context.Context, j runner.Job) (runner.Result, error) { <-release; return ok(ctx, j) }}})
	settler := broker.Settler{Publisher: pub}
	first, second := newAckLog(), newAckLog()
	w.Handle(broker.NewTask(delivery(t, first, "busy", 30*time.Second, time.Now().Add(time.Minute)), settler))
	handled := make(chan struct{})
	go func() {
		w.Handle(broker.NewTask(delivery(t, second, "waiting", 30*time.Second, time.Now().Add(time.Minute)), settler))
		close(handled)
	}()
	w.StopTaking()
	if got := second.wait(t); got != "requeue" {
		t.Fatalf("the waiting task was settled with %s", got)
	}
	<-handled
	close(release)
	if got := first.wait(t); got != "ack" {
		t.Fatalf("the running task was settled with %s", got)
	}
	if m.get("rejected requeued") != 1 {
		t.Fatalf("metrics %v", m.counts)
	}
}
