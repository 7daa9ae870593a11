// Package worker turns tasks (broker.Task: a parsed delivery) into script runs and replies.
//
// For each task the worker computes one outcome and settles it once (broker.Task.Settle): an invalid
// request is dead-lettered; work whose time budget has run out (contract.Budget.RunTime) is dead-lettered,
// so operators see capacity shortfalls; otherwise the script is resolved and run in a child process for at
// most the budget's run time, and the reply is published with a confirm before the ack. A reply that cannot
// be published is retried until the caller's deadline (a broker alarm or a redial passes), then dropped and
// the task acked: nobody is waiting. A run cut short by a forced shutdown is requeued for
// another worker. Requeues are bounded by the task queue's delivery limit, so a task that always kills its
// worker ends in the dead-letter queue.
//
// Shutdown, in order (see Worker.Shutdown and cmd/worker):
//  1. stop consuming (the broker cancels our consumer; deliveries already received are nacked with requeue);
//  2. wait for running scripts, at most the drain timeout;
//  3. past it, cancel the rest: their process groups are killed and their tasks requeued;
//  4. close the consume and publish connections (the broker requeues anything still unacked).
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// Config configures a Worker.
type Config struct {
	ID          string
	Concurrency int
	Repository  repository.Repository
	Runner      ScriptRunner
	// Environments builds environments for scripts with a requirements.txt; nil refuses such scripts.
	Environments Environments
	// Isolation is the default for scripts whose manifest names none: manifest.Warm or manifest.Process.
	Isolation string
	// Egress, when set, adds the egress proxy's last refusal of a failed run to its reply's error.
	Egress EgressRefusals
	// Metrics, nil: a set registered nowhere.
	Metrics *Metrics
	// Logger, nil: discard.
	Logger *slog.Logger
	Now    func() time.Time
}

// Worker handles task deliveries.
type Worker struct {
	cfg      Config
	log      *slog.Logger
	slots    chan struct{}
	wg       sync.WaitGroup
	stopping atomic.Bool
	// hardCtx is cancelled when the drain timeout runs out: running scripts are killed.
	hardCtx    context.Context
	hardCancel context.CancelFunc

	limitsMu sync.Mutex
	limits   map[string]chan struct{} // per-script concurrency caps from manifests

	layoutsMu sync.Mutex
	layouts   map[string]layout // by script folder and content: what the folder holds besides scraper.py
}

// layout is what a script folder's manifest and requirements say. Equal content means an equal layout, so
// it is read from disk once per content rather than on every task.
type layout struct {
	manifest    manifest.Manifest
	manifestErr error
	reqFile     string // "" without requirements.txt
}

// maxLayouts bounds the layout memo; past it the memo starts over (old contents are rarely asked again).
const maxLayouts = 1024

// layoutOf returns the layout of script, read from its folder on the first task of its content.
func (w *Worker) layoutOf(script repository.Script) layout {
	key := script.Dir + "\x00" + script.Content
	if script.Content != "" {
		w.layoutsMu.Lock()
		l, ok := w.layouts[key]
		w.layoutsMu.Unlock()
		if ok {
			return l
		}
	}
	var l layout
	l.manifest, l.manifestErr = manifest.Load(script.Dir)
	if reqFile := filepath.Join(script.Dir, "requirements.txt"); fileExists(reqFile) {
		l.reqFile = reqFile
	}
	if script.Content != "" {
		w.layoutsMu.Lock()
		if w.layouts == nil || len(w.layouts) >= maxLayouts {
			w.layouts = map[string]layout{}
		}
		w.layouts[key] = l
		w.layoutsMu.Unlock()
	}
	return l
}

// New returns a worker.
func New(cfg Config) *Worker {
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
		cfg.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Worker{
		cfg:        cfg,
		log:        cfg.Logger,
		slots:      make(chan struct{}, cfg.Concurrency),
		hardCtx:    ctx,
		hardCancel: cancel,
	}
	cfg.Metrics.Slots.Set(float64(cfg.Concurrency))
	return w
}

// Handle takes one task. It returns at once; the task runs in its own goroutine once a slot is free.
// Prefetch equals the number of slots, so in steady state a slot is always free. Every task ends in one
// call of Task.Settle with the outcome the worker computed.
func (w *Worker) Handle(t *broker.Task) {
	if w.stopping.Load() {
		w.requeue(w.log, t, "worker is shutting down")
		return
	}
	w.wg.Add(1)
	w.slots <- struct{}{}
	w.cfg.Metrics.SlotsBusy.Inc()
	go func() {
		defer func() {
			<-w.slots
			w.cfg.Metrics.SlotsBusy.Dec()
			w.wg.Done()
		}()
		w.process(t)
	}()
}

// BeginShutdown makes the worker refuse (requeue) new deliveries.
func (w *Worker) BeginShutdown() { w.stopping.Store(true) }

// Shutdown waits for running tasks up to drain; past it, it cancels them (killing their process groups and
// requeueing their tasks) and waits up to grace more. It reports whether everything finished in time.
func (w *Worker) Shutdown(drain, grace time.Duration) bool {
	w.BeginShutdown()
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(drain):
	}
	w.log.Warn("drain timeout reached; stopping running scripts and requeueing their tasks", "drain_timeout", drain)
	w.hardCancel()
	select {
	case <-done:
		return true
	case <-time.After(grace):
		return false
	}
}

// process computes the task's outcome and settles it.
func (w *Worker) process(t *broker.Task) {
	received := w.cfg.Now()
	if t.Invalid != nil {
		w.reject(t)
		return
	}
	req := t.Request
	log := w.log.With("request_id", req.RequestID, "script", req.ScriptName)
	if t.Redelivered {
		log.Info("task redelivered")
	}

	timeout := req.RunTime(received)
	if timeout <= 0 {
		log.Warn("deadline passed before the task started; dead-lettering it", "deadline", req.Deadline)
		w.cfg.Metrics.Rejected.WithLabelValues("expired").Inc()
		_ = t.Settle(w.hardCtx, broker.Outcome{Action: broker.DeadLetter, Logger: log,
			Reason: fmt.Sprintf("expired: the caller's deadline %s passed before a worker could start the task", req.Deadline.UTC().Format(time.RFC3339))})
		return
	}

	log.Debug("task started", "timeout_ms", timeout.Milliseconds(), "subject", req.Subject)
	reply, requeue := w.run(log, req, timeout)
	if requeue {
		w.requeue(log, t, "run interrupted by shutdown")
		return
	}
	reply.Version = contract.Version
	reply.RequestID = req.RequestID
	reply.WorkerID = w.cfg.ID
	w.respond(log, t, reply, received)
}

// run resolves and runs the script. requeue is set when the run was cut short by a forced shutdown.
func (w *Worker) run(log *slog.Logger, req *contract.Request, timeout time.Duration) (_ *contract.Reply, requeue bool) {
	ctx := w.hardCtx
	script, err := w.cfg.Repository.Resolve(ctx, req.ScriptName)
	if errors.Is(err, repository.ErrNotFound) {
		return contract.Failed(req, contract.CodeScriptNotFound, fmt.Sprintf("script %q was not found in the script repository", req.ScriptName)), false
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, true
		}
		log.Error("resolve script", "error", err)
		return contract.Failed(req, contract.CodeInternal, fmt.Sprintf("could not load script %q: %v", req.ScriptName, err)), false
	}
	log = log.With("script_version", script.Version)

	lay := w.layoutOf(script)
	man := lay.manifest
	if lay.manifestErr != nil {
		return contract.Failed(req, contract.CodeInvalidManifest, fmt.Sprintf("script %q has a bad manifest: %v", req.ScriptName, lay.manifestErr)), false
	}
	if req.TimeoutDefaulted && man.Timeout > 0 {
		timeout = min(timeout, time.Duration(man.Timeout*float64(time.Second)))
	}
	isolation := man.Isolation
	if isolation == "" {
		isolation = w.cfg.Isolation // the manifest does not say: the worker's default
	}
	if isolation == "" {
		isolation = manifest.Warm
	}
	job := runner.Job{
		RequestID:        req.RequestID,
		ScriptName:       req.ScriptName,
		ScriptDir:        script.Dir,
		Parameters:       req.Parameters,
		Timeout:          timeout,
		Version:          script.Version,
		Content:          script.Content,
		MemoryLimitBytes: int64(man.MemoryLimitMB) << 20,
		Warm:             isolation == manifest.Warm,
	}

	// Everything before the script starts waits no longer than the budget allows.
	waitCtx, cancelWait := context.WithDeadline(ctx, req.StartBy())
	defer cancelWait()
	if lay.reqFile != "" {
		lease, reply := w.environment(waitCtx, log, req, lay.reqFile)
		if reply != nil {
			return reply, ctx.Err() != nil
		}
		defer lease.Release()
		job.Python = lease.Python
	}
	release, ok := w.acquireScriptSlot(waitCtx, req.ScriptName, man.Concurrency)
	if !ok {
		if ctx.Err() != nil {
			return nil, true
		}
		return contract.Failed(req, contract.CodeScriptTimeout, fmt.Sprintf("script %q allows %d concurrent runs per worker and none became free before the deadline", req.ScriptName, man.Concurrency)), false
	}
	defer release()
	// Time spent waiting for the environment or a slot comes off the script's share.
	job.Timeout = min(job.Timeout, req.RunTime(w.cfg.Now()))
	if job.Timeout <= 0 {
		return contract.Failed(req, contract.CodeScriptTimeout, "no time was left to run the script before the caller's deadline"), false
	}

	started := w.cfg.Now()
	res, err := w.cfg.Runner.Run(ctx, job)
	finished := w.cfg.Now()
	if err != nil {
		if contract.Classify(err) == contract.Cancelled && ctx.Err() != nil {
			log.Warn("script stopped by shutdown; requeueing", "error", err)
			return nil, true
		}
		log.Error("run script", "error", err)
		return contract.Failed(req, contract.CodeInternal, "the worker could not run the script: "+err.Error()), false
	}
	w.cfg.Metrics.ScriptRuntime.WithLabelValues(req.ScriptName).Observe(res.Duration.Seconds())
	if why, ok := w.egressRefusal(req, res, started); ok {
		res.Err.Message += "; " + why
	}
	reply := &contract.Reply{
		Status:        res.Status,
		Data:          res.Data,
		Error:         res.Err,
		ExecutionTime: res.Duration.Seconds(),
		ScriptVersion: script.Version,
		StartedAt:     started.UTC(),
		FinishedAt:    finished.UTC(),
	}
	return reply, false
}

// environment returns a lease on the script's dependency environment, or the reply that explains why
// there is none.
func (w *Worker) environment(ctx context.Context, log *slog.Logger, req *contract.Request, reqFile string) (*envcache.Lease, *contract.Reply) {
	if w.cfg.Environments == nil {
		return nil, contract.Failed(req, contract.CodeDependencyInstallFailed, "this worker cannot install script dependencies (no environment cache configured)")
	}
	lease, err := w.cfg.Environments.Get(ctx, reqFile)
	if err == nil {
		return lease, nil
	}
	var ie *envcache.InstallError
	switch {
	case errors.As(err, &ie):
		log.Warn("script dependencies could not be installed", "error", ie.Reason)
		reply := contract.Failed(req, contract.CodeDependencyInstallFailed, fmt.Sprintf("the requirements of script %q could not be installed: %s", req.ScriptName, ie.Reason))
		reply.Error.Detail = ie.Output
		return nil, reply
	case ctx.Err() != nil:
		return nil, contract.Failed(req, contract.CodeDependenciesInstalling, fmt.Sprintf("the dependencies of script %q are still being installed on this worker; retry in a moment", req.ScriptName))
	}
	log.Error("script environment", "error", err)
	return nil, contract.Failed(req, contract.CodeInternal, fmt.Sprintf("could not prepare the environment of script %q: %v", req.ScriptName, err))
}

// acquireScriptSlot enforces a manifest's per-script concurrency cap. It reports false when ctx ends first.
func (w *Worker) acquireScriptSlot(ctx context.Context, script string, limit int) (release func(), ok bool) {
	if limit <= 0 {
		return func() {}, true
	}
	w.limitsMu.Lock()
	if w.limits == nil {
		w.limits = map[string]chan struct{}{}
	}
	sem, found := w.limits[script]
	if !found || cap(sem) != limit {
		sem = make(chan struct{}, limit) // a changed cap takes effect for new runs
		w.limits[script] = sem
	}
	w.limitsMu.Unlock()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, true
	case <-ctx.Done():
		return nil, false
	}
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// respond records the task's metrics, then settles it: the reply goes out (retried until the caller's
// deadline, see broker.Task.Settle) and the task is acked.
func (w *Worker) respond(log *slog.Logger, t *broker.Task, reply *contract.Reply, received time.Time) {
	label := t.Request.ScriptName
	if reply.Error != nil && reply.Error.Code == contract.CodeScriptNotFound {
		label = UnknownScript
	}
	elapsed := w.cfg.Now().Sub(received)
	w.cfg.Metrics.Requests.WithLabelValues(label, string(reply.Status)).Inc()
	w.cfg.Metrics.Duration.WithLabelValues(label).Observe(elapsed.Seconds())
	if err := t.Settle(w.hardCtx, broker.Outcome{Reply: reply, Action: broker.Ack, Logger: log}); err != nil {
		// Nobody waits any more: running the script again elsewhere would only produce another reply that
		// nobody reads, so the task is acked, not requeued.
		log.Error("reply not published before the caller's deadline; dropping it", "error", err)
	}
	attrs := []any{"status", reply.Status, "duration_ms", elapsed.Milliseconds(), "execution_time_ms", int64(reply.ExecutionTime * 1000)}
	if reply.Error != nil {
		attrs = append(attrs, "error_code", reply.Error.Code, "error", reply.Error.Message)
	}
	log.Info("task done", attrs...)
}

// reject answers an invalid task (when it says where to) and dead-letters it.
func (w *Worker) reject(t *broker.Task) {
	w.log.Warn("invalid task; dead-lettering it", "error", t.Invalid, "message_id", t.MessageID, "correlation_id", t.CorrelationID)
	w.cfg.Metrics.Rejected.WithLabelValues("invalid").Inc()
	o := broker.Outcome{Action: broker.DeadLetter, Reason: "invalid: " + t.Invalid.Error()}
	if t.CanReply() {
		o.Reply = contract.Failed(&contract.Request{RequestID: t.CorrelationID}, contract.CodeInvalidRequest, "invalid task: "+t.Invalid.Error())
		o.Reply.Version = contract.Version
		o.Reply.WorkerID = w.cfg.ID
	}
	_ = t.Settle(w.hardCtx, o)
}

// requeue hands t back to the queue for another worker.
func (w *Worker) requeue(log *slog.Logger, t *broker.Task, why string) {
	w.cfg.Metrics.Rejected.WithLabelValues("requeued").Inc()
	_ = t.Settle(w.hardCtx, broker.Outcome{Action: broker.Requeue, Reason: why, Logger: log})
}
