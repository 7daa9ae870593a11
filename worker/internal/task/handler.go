package task

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/worker/internal/envcache"
	"github.com/scrapeplatform/platform/worker/internal/manifest"
	"github.com/scrapeplatform/platform/worker/internal/repository"
	"github.com/scrapeplatform/platform/worker/internal/runner"
)

// ScriptRunner runs one script job.
type ScriptRunner interface {
	Run(ctx context.Context, job runner.Job) (runner.Result, error)
}

var _ ScriptRunner = (*runner.Runner)(nil)

// Environments provides a script's dependency environment from its requirements.txt.
type Environments interface {
	Get(ctx context.Context, requirementsFile string) (*envcache.Lease, error)
}

var _ Environments = (*envcache.Cache)(nil)

// DefaultStopGrace is Config.StopGrace's default.
const DefaultStopGrace = 5 * time.Second

// Config configures a Handler.
type Config struct {
	// ID is the worker's id (WORKER_ID), written into every reply.
	ID string
	// Concurrency is the number of script slots (WORKER_CONCURRENCY); below 1 means 1.
	Concurrency int
	Repository  repository.Repository
	Runner      ScriptRunner
	// Environments builds environments for scripts with a requirements.txt; nil refuses such scripts.
	Environments Environments
	// Defaults are the worker's values for what a script's manifest leaves out (SCRIPT_ISOLATION); an
	// empty Isolation means manifest.Warm.
	Defaults manifest.Defaults
	// StopGrace bounds how long Shutdown waits, once its ctx has ended and the running scripts have been
	// told to stop, for their tasks to be requeued; 0 means DefaultStopGrace.
	StopGrace time.Duration
	// Egress, when set, adds the egress proxy's last refusal of a failed run to its reply's error.
	Egress EgressRefusals
	// Metrics records the handler's work; nil records nothing.
	Metrics Metrics
	// Jobs is the job store, for tasks that carry a job (Request.Job); nil: such tasks fail with
	// internal_error (this worker has no job store). See jobs.go.
	Jobs JobStore
	// Callbacks enqueues the webhook of a job whose final state this worker recorded; nil: none.
	Callbacks Callbacks
	// Leaser leases long jobs (see jobs.go); nil: every job holds its delivery.
	Leaser Leaser
	// MaxJobResultBytes is a job's result limit (SCRAPE_MAX_RESULT_MB); 0 means DefaultMaxJobResultBytes.
	MaxJobResultBytes int
	// InlineResultBytes is the largest job result that travels inline (JOB_INLINE_RESULT_KB); larger ones
	// are claim-checked. 0 means DefaultInlineResultBytes.
	InlineResultBytes int
	// CancelPoll is how often a running job's cancel marker is checked (JOB_CANCEL_POLL); 0 means
	// DefaultCancelPoll.
	CancelPoll time.Duration
	// ConsumerTimeout is the broker's consumer_timeout (RABBITMQ_CONSUMER_TIMEOUT) and LeaseMargin what a
	// held delivery keeps clear of it: a job whose run time exceeds ConsumerTimeout - LeaseMargin is leased.
	// 0 means DefaultConsumerTimeout, DefaultLeaseMargin.
	ConsumerTimeout, LeaseMargin time.Duration
	// JobMetrics records jobs' outcomes and results; nil records nothing.
	JobMetrics JobMetrics
	// Logger, nil: discard.
	Logger *slog.Logger
	// Now, nil: time.Now.
	Now func() time.Time
}

// Handler turns tasks into script runs and settles each with its outcome.
type Handler struct {
	cfg      Config
	log      *slog.Logger
	slots    chan struct{}
	wg       sync.WaitGroup
	stopping atomic.Bool
	// stopTaking is closed by StopTaking: a task waiting for a slot is requeued.
	stopTaking chan struct{}
	stopOnce   sync.Once
	// hardCtx is cancelled when Shutdown's ctx ends: running scripts are killed.
	hardCtx    context.Context
	hardCancel context.CancelFunc

	limitsMu sync.Mutex
	limits   map[string]chan struct{} // per-script concurrency caps from manifests

	jobsMu  sync.Mutex
	running map[string]context.CancelCauseFunc // the jobs this worker runs, by request id

	layoutsMu sync.Mutex
	layouts   map[string]layout // by script folder and content: what the folder holds besides scraper.py
}

// New returns a Handler.
func New(cfg Config) *Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = DefaultStopGrace
	}
	cfg = cfg.jobDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	h := &Handler{
		cfg:        cfg,
		log:        cfg.Logger,
		slots:      make(chan struct{}, cfg.Concurrency),
		hardCtx:    ctx,
		hardCancel: cancel,
		stopTaking: make(chan struct{}),
	}
	cfg.Metrics.Slots(cfg.Concurrency)
	return h
}

// Handle takes one task. It returns at once; the task runs in its own goroutine once a slot is free.
// Prefetch equals the number of slots, so in steady state a slot is always free. Every task ends in one
// call of Task.Settle with the outcome the handler computed. Once Shutdown has begun, tasks are requeued.
func (h *Handler) Handle(t *broker.Task) {
	if h.stopping.Load() {
		h.requeue(h.log, t, "worker is shutting down")
		return
	}
	h.wg.Add(1)
	if !h.takeSlot(t) {
		h.wg.Done()
		return
	}
	h.cfg.Metrics.SlotTaken()
	go func() {
		defer func() {
			<-h.slots
			h.cfg.Metrics.SlotFreed()
			h.wg.Done()
		}()
		h.process(t)
	}()
}

// InFlight is how many tasks hold a slot now (running, or waiting for their environment or a per-script
// slot): the admission controller's measure of demand.
func (h *Handler) InFlight() int { return len(h.slots) }

// StopTaking makes the handler requeue new tasks from now on, and a task that waits for a slot behind
// leased jobs at once. Shutdown calls it; the worker calls it as soon as its stop signal arrives, while the
// consumer may still be handing over a task.
func (h *Handler) StopTaking() {
	h.stopOnce.Do(func() {
		h.stopping.Store(true)
		close(h.stopTaking)
	})
}

// Shutdown stops the handler: new tasks are requeued from now on; running tasks may finish until ctx
// ends (the drain); then their scripts are stopped (their process groups killed) and their tasks
// requeued, which may take at most Config.StopGrace more. It returns nil when every task was settled, an
// error when some were still running at the end (the broker requeues those when the connection closes).
func (h *Handler) Shutdown(ctx context.Context) error {
	h.StopTaking()
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	h.log.Warn("drain ended; stopping running scripts and requeueing their tasks", "cause", context.Cause(ctx))
	h.hardCancel()
	grace := time.NewTimer(h.cfg.StopGrace)
	defer grace.Stop()
	select {
	case <-done:
		return nil
	case <-grace.C:
		return fmt.Errorf("task handler shutdown: tasks still running %s after their scripts were told to stop", h.cfg.StopGrace)
	}
}

// process computes the task's outcome and settles it.
func (h *Handler) process(t *broker.Task) {
	received := h.cfg.Now()
	if t.Invalid != nil {
		h.reject(t)
		return
	}
	req := t.Request
	log := h.log.With("request_id", req.RequestID, "script", req.ScriptName)
	if t.Redelivered {
		log.Info("task redelivered")
	}
	if req.Job != nil {
		h.processJob(t, log, received)
		return
	}

	timeout := req.RunTime(received)
	if timeout <= 0 {
		log.Warn("deadline passed before the task started; dead-lettering it", "deadline", req.Deadline)
		h.cfg.Metrics.TaskRejected(RejectedExpired)
		_ = t.Settle(h.hardCtx, broker.Outcome{Action: broker.DeadLetter, Logger: log,
			Reason: fmt.Sprintf("expired: the caller's deadline %s passed before a worker could start the task", req.Deadline.UTC().Format(time.RFC3339))})
		return
	}

	log.Debug("task started", "timeout_ms", timeout.Milliseconds(), "subject", req.Subject)
	reply, requeue := h.run(h.hardCtx, log, req, timeout, 0)
	if requeue {
		h.requeue(log, t, "run interrupted by shutdown")
		return
	}
	reply.Version = contract.Version
	reply.RequestID = req.RequestID
	reply.WorkerID = h.cfg.ID
	h.respond(log, t, reply, received)
}
