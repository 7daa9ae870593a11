package task

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/job"
)

// Jobs (issue 10). A task whose Request.Job is set was recorded by the gateway as a job in the job store;
// the gateway may have stopped waiting for its reply (it answered 202), so the store is where the outcome
// goes:
//
//  1. Start records the job running (worker_id, started_at). A job that is final already (cancelled while
//     queued) is not run: the task is acked and answered with the recorded final state. A store that does
//     not answer requeues the task (the broker redelivers it, bounded by the queue's delivery limit).
//  2. The script runs with the job's result limit (Config.MaxJobResultBytes). A cancel notice
//     (Handler.CancelJob, from the broker's cancel exchange) or the backstop poll of the store's cancel
//     marker every Config.CancelPoll stops the run: the runner kills its whole process tree.
//  3. A completed result larger than Config.InlineResultBytes is written to the store (the claim check) and
//     the reply carries its key and size instead of the data.
//  4. Finish records the final state; if another final state won (a cancel), the reply carries that one.
//     The winner of Finish enqueues the job's webhook (Config.Callbacks). A Finish that keeps failing is
//     logged and the reply still goes out (the gateway may be waiting for it).
//
// Long jobs are leased: RabbitMQ closes a channel that holds a delivery past its consumer_timeout, so a job
// whose run time exceeds Config.ConsumerTimeout - Config.LeaseMargin records a lease in the store, publishes
// a lease copy of its task (Config.Leaser), acks the delivery, and renews both every quarter lease period
// while it runs. A lease copy that comes back as a task is dropped when the job is final or its lease is
// fresh; otherwise its worker was lost and the job runs again with the time left, or fails with worker_lost
// when none is left. A worker that cannot renew its lease stops the run before the copy comes back (lease).

// Defaults of the job settings of Config.
const (
	DefaultMaxJobResultBytes = 100 << 20
	DefaultInlineResultBytes = 256 << 10
	DefaultCancelPoll        = 10 * time.Second
	DefaultConsumerTimeout   = 30 * time.Minute
	DefaultLeaseMargin       = 5 * time.Minute
)

// JobStore is what the handler needs of the job store (job.S3 and job.Memory implement it).
type JobStore interface {
	Start(ctx context.Context, j job.Job) error
	Finish(ctx context.Context, j job.Job) (job.Job, bool, error)
	Get(ctx context.Context, id, owner string) (job.Job, error)
	CancelRequested(ctx context.Context, id string) (bool, error)
	PutResult(ctx context.Context, id string, data []byte) (string, error)
	RenewLease(ctx context.Context, id string, l job.Lease) error
	GetLease(ctx context.Context, id string) (job.Lease, bool, error)
}

var (
	_ JobStore = (*job.S3)(nil)
	_ JobStore = (*job.Memory)(nil)
)

// Callbacks enqueues the webhook of a finished job (shared/webhook's Outbox implements it).
type Callbacks interface {
	Enqueue(ctx context.Context, j job.Job) error
}

// Leaser publishes lease copies of tasks (broker.Leaser implements it).
type Leaser interface {
	Lease(ctx context.Context, t *broker.Task, by string) error
	Period() time.Duration
}

var _ Leaser = (*broker.Leaser)(nil)

// The storage labels of JobMetrics.ResultStored.
const (
	StorageInline     = "inline"
	StorageClaimCheck = "claim_check"
)

// JobMetrics records jobs (the telemetry package implements it with Prometheus).
type JobMetrics interface {
	// JobFinished counts a job whose final state this worker recorded, with the time from its acceptance
	// by the gateway to its end.
	JobFinished(status string, sinceAccepted time.Duration)
	// ResultStored counts a completed job's result of size bytes, kept inline or claim-checked.
	ResultStored(storage string, bytes int64)
}

type nopJobMetrics struct{}

func (nopJobMetrics) JobFinished(string, time.Duration) {}
func (nopJobMetrics) ResultStored(string, int64)        {}

func (c Config) jobDefaults() Config {
	if c.MaxJobResultBytes <= 0 {
		c.MaxJobResultBytes = DefaultMaxJobResultBytes
	}
	if c.InlineResultBytes <= 0 {
		c.InlineResultBytes = DefaultInlineResultBytes
	}
	if c.CancelPoll <= 0 {
		c.CancelPoll = DefaultCancelPoll
	}
	if c.ConsumerTimeout <= 0 {
		c.ConsumerTimeout = DefaultConsumerTimeout
	}
	if c.LeaseMargin <= 0 {
		c.LeaseMargin = DefaultLeaseMargin
	}
	if c.JobMetrics == nil {
		c.JobMetrics = nopJobMetrics{}
	}
	return c
}

// CancelJob stops the run of the job with this request id if this worker runs it (a cancel notice); it
// reports whether it did. Repeating it is harmless.
func (h *Handler) CancelJob(id string) bool {
	h.jobsMu.Lock()
	cancel, ok := h.running[id]
	h.jobsMu.Unlock()
	if ok {
		h.log.Info("cancel notice: stopping the job's run", "request_id", id)
		cancel(errJobCancelled)
	}
	return ok
}

// RunningJobs is the number of jobs this worker runs now.
func (h *Handler) RunningJobs() int {
	h.jobsMu.Lock()
	defer h.jobsMu.Unlock()
	return len(h.running)
}

// Bounds of the store calls around a job.
const (
	// storeCallLimit bounds one store call (the SDK retries within it).
	storeCallLimit = 30 * time.Second
	// finishAttempts is how often Finish is tried before the reply goes out without it.
	finishAttempts = 3
)

// processJob takes a task that carries a job.
func (h *Handler) processJob(t *broker.Task, log *slog.Logger, received time.Time) {
	req := t.Request
	if h.cfg.Jobs == nil {
		log.Error("task carries a job but this worker has no job store (set JOB_STORE_BUCKET)")
		h.respond(log, t, h.finishReply(req, contract.Failed(req, contract.CodeInternal, "this worker has no job store")), received)
		return
	}
	base := job.Job{RequestID: req.RequestID, Owner: req.Job.Owner, ScriptName: req.ScriptName,
		CreatedAt: req.Accepted, CallbackURL: req.Job.CallbackURL, Deadline: req.Deadline.UTC()}
	timeout := req.RunTime(received)
	if t.LeaseCopy() {
		run, reply := h.leaseCameBack(log, req, base, timeout)
		if !run {
			if err := t.Settle(h.hardCtx, broker.Outcome{Reply: reply, Action: broker.Ack, Logger: log}); err != nil {
				log.Warn("settle a lease copy", "error", err)
			}
			return
		}
		log.Warn("no worker holds a live lease on this job (its worker was lost, or the task was parked); running it", "time_left", timeout)
	}
	if timeout <= 0 {
		log.Warn("deadline passed before the job started; recording it failed and dead-lettering the task", "deadline", req.Deadline)
		h.cfg.Metrics.TaskRejected(RejectedExpired)
		h.finishJob(log, base, job.StatusFailed, &contract.Error{Code: contract.CodeDeadlineExceeded,
			Message: "the job waited in the queue past its deadline and was not run"})
		_ = t.Settle(h.hardCtx, broker.Outcome{Action: broker.DeadLetter, Logger: log,
			Reason: fmt.Sprintf("expired: the job's deadline %s passed before a worker could start it", req.Deadline.UTC().Format(time.RFC3339))})
		return
	}

	running := base
	running.Status, running.StartedAt, running.WorkerID = job.StatusRunning, h.cfg.Now().UTC(), h.cfg.ID
	sctx, cancelStart := context.WithTimeout(context.WithoutCancel(h.hardCtx), storeCallLimit)
	err := h.cfg.Jobs.Start(sctx, running)
	cancelStart()
	var fe *job.FinishedError
	switch {
	case errors.As(err, &fe):
		log.Info("job already finished (cancelled while queued); not running it", "status", fe.Job.Status)
		h.respond(log, t, h.finishReply(req, replyOf(fe.Job)), received)
		return
	case err != nil && contract.Classify(err) == contract.Transient:
		log.Warn("job store unavailable at the job's start; requeueing the task", "error", err)
		h.requeue(log, t, "job store unavailable")
		return
	case err != nil:
		log.Error("record the job's start", "error", err)
		h.respond(log, t, h.finishReply(req, contract.Failed(req, contract.CodeInternal, "could not record the job's start: "+err.Error())), received)
		return
	}

	ctx, cancel := context.WithCancelCause(h.hardCtx)
	defer cancel(nil)
	h.jobsMu.Lock()
	if h.running == nil {
		h.running = map[string]context.CancelCauseFunc{}
	}
	h.running[req.RequestID] = cancel
	h.jobsMu.Unlock()
	defer func() {
		h.jobsMu.Lock()
		delete(h.running, req.RequestID)
		h.jobsMu.Unlock()
	}()
	watch, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go h.pollCancel(watch, log, req.RequestID, cancel)

	leased := false
	if h.cfg.Leaser != nil && timeout > h.cfg.ConsumerTimeout-h.cfg.LeaseMargin {
		leased = h.lease(watch, log, t, cancel)
	}

	reply, requeue := h.run(ctx, log, req, timeout, h.cfg.MaxJobResultBytes)
	stopWatch()
	if requeue {
		if leased {
			// The delivery is acked: the lease copies bring the job back once the last lease runs out.
			why := "shutdown"
			if errors.Is(context.Cause(ctx), errLeaseLost) {
				why = "its lease running out"
			}
			log.Warn("leased job's run stopped by " + why + "; its lease copy brings it back to a worker")
			return
		}
		h.requeue(log, t, "run interrupted by shutdown")
		return
	}
	reply.Version, reply.RequestID, reply.WorkerID = contract.Version, req.RequestID, h.cfg.ID
	reply = h.completeJob(log, req, running, reply)
	if !leased {
		h.respond(log, t, reply, received)
		return
	}
	h.cfg.Metrics.TaskDone(req.ScriptName, clientOf(req), string(reply.Status), h.cfg.Now().Sub(received))
	if err := t.Reply(h.hardCtx, reply, log); err != nil {
		log.Info("reply of a leased job not published (its caller reads the job store)", "error", err)
	}
	log.Info("task done", "status", reply.Status, "leased", true, "execution_time_ms", int64(reply.ExecutionTime*1000))
}

// leaseCameBack decides what a lease copy that came back from the lease queue means: run is false when the
// job is final or its lease fresh (the copy is dropped, answered with reply when the job is final), true
// when its worker was lost and time is left to run it again. With no time left the job is recorded failed
// (worker_lost) and run is false.
func (h *Handler) leaseCameBack(log *slog.Logger, req *contract.Request, base job.Job, timeout time.Duration) (run bool, reply *contract.Reply) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.hardCtx), storeCallLimit)
	defer cancel()
	j, err := h.cfg.Jobs.Get(ctx, req.RequestID, req.Job.Owner)
	switch {
	case errors.Is(err, job.ErrNotFound):
		log.Warn("lease copy of a job the store does not know; dropping it")
		return false, nil
	case err != nil:
		// Running it again could run it twice; dropping it could leave it running forever. The store is
		// down: run it (a duplicate run loses Finish to the first and changes nothing).
		log.Error("job store unavailable for a lease copy; running the job again", "error", err)
		return timeout > 0, h.lostReply(log, req, base, timeout)
	case j.Status.Final():
		log.Debug("lease copy of a finished job; dropping it", "status", j.Status)
		return false, nil
	}
	l, found, err := h.cfg.Jobs.GetLease(ctx, req.RequestID)
	if err == nil && found && l.Until.After(h.cfg.Now()) {
		log.Debug("lease copy of a job whose lease is fresh; dropping it", "worker", l.WorkerID, "lease_until", l.Until)
		return false, nil
	}
	if err != nil {
		log.Error("read the job's lease; taking the worker as lost", "error", err)
	}
	if timeout > 0 {
		return true, nil
	}
	return false, h.lostReply(log, req, base, timeout)
}

// lostReply records a job whose worker was lost, with no time left, as failed (worker_lost).
func (h *Handler) lostReply(log *slog.Logger, req *contract.Request, base job.Job, timeout time.Duration) *contract.Reply {
	if timeout > 0 {
		return nil
	}
	log.Warn("the worker that leased this job was lost and no time is left to run it again; failing it")
	return h.finishReply(req, h.finishJob(log, base, job.StatusFailed, &contract.Error{Code: contract.CodeWorkerLost,
		Message: "the worker running the job stopped answering and too little of its time was left to run it again"}))
}

// finishJob records a job that did not run as final with status and e; it returns the reply of the
// recorded final state.
func (h *Handler) finishJob(log *slog.Logger, base job.Job, status job.Status, e *contract.Error) *contract.Reply {
	j := base
	j.Status, j.Error, j.FinishedAt, j.WorkerID = status, e, h.cfg.Now().UTC(), h.cfg.ID
	return replyOf(h.finish(log, j))
}

// finishReply stamps a reply built for req.
func (h *Handler) finishReply(req *contract.Request, r *contract.Reply) *contract.Reply {
	r.Version, r.RequestID, r.WorkerID = contract.Version, req.RequestID, h.cfg.ID
	return r
}

// completeJob claim-checks a large result and records the job's final state; it returns the reply of the
// recorded final state (another's, when a cancel won).
func (h *Handler) completeJob(log *slog.Logger, req *contract.Request, running job.Job, reply *contract.Reply) *contract.Reply {
	final := running
	final.Status = job.Status(reply.Status)
	final.FinishedAt = h.cfg.Now().UTC()
	if !reply.FinishedAt.IsZero() {
		final.FinishedAt = reply.FinishedAt
	}
	final.ExecutionTime, final.ScriptVersion, final.Error = reply.ExecutionTime, reply.ScriptVersion, reply.Error
	if reply.Status == contract.StatusCompleted {
		size := int64(len(reply.Data))
		if size > int64(h.cfg.InlineResultBytes) {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(h.hardCtx), 5*storeCallLimit)
			key, err := h.cfg.Jobs.PutResult(ctx, req.RequestID, reply.Data)
			cancel()
			if err != nil {
				log.Error("store the job's result (claim check)", "error", err, "bytes", size)
				final.Status = job.StatusFailed
				final.Error = &contract.Error{Code: contract.CodeJobStoreUnavailable,
					Message: fmt.Sprintf("the result (%d bytes) could not be stored in the job store; retry the job", size)}
			} else {
				final.Result = &job.Result{Key: key, Size: size}
			}
		} else {
			final.Result = &job.Result{Data: reply.Data, Size: size}
		}
	}
	rec := h.finish(log, final)
	out := replyOf(rec)
	if out.ExecutionTime == 0 {
		out.ExecutionTime = reply.ExecutionTime
	}
	return h.finishReply(req, out)
}

// finish records j as the job's final state, retrying a store that fails, and returns the recorded final
// state: j when it won (the webhook is then enqueued and the job counted), the earlier one when another
// won, j as well when the store never answered (logged: the reply still goes out).
func (h *Handler) finish(log *slog.Logger, j job.Job) job.Job {
	var (
		rec job.Job
		won bool
		err error
	)
	wait := time.Second
	for attempt := 1; attempt <= finishAttempts; attempt++ {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(h.hardCtx), storeCallLimit)
		rec, won, err = h.cfg.Jobs.Finish(ctx, j)
		cancel()
		if err == nil || contract.Classify(err) != contract.Transient || attempt == finishAttempts {
			break
		}
		time.Sleep(wait)
		wait *= 2
	}
	if err != nil {
		log.Error("could not record the job's final state; replying without it", "error", err, "status", j.Status)
		return j
	}
	if !won {
		log.Info("another final state was recorded first; replying with it", "status", rec.Status, "ours", j.Status)
		return rec
	}
	h.cfg.JobMetrics.JobFinished(string(rec.Status), rec.FinishedAt.Sub(rec.CreatedAt))
	if r := rec.Result; r != nil {
		storage := StorageInline
		if r.Key != "" {
			storage = StorageClaimCheck
		}
		h.cfg.JobMetrics.ResultStored(storage, r.Size)
	}
	if rec.CallbackURL != "" && h.cfg.Callbacks != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(h.hardCtx), storeCallLimit)
		if err := h.cfg.Callbacks.Enqueue(ctx, rec); err != nil {
			log.Error("enqueue the job's webhook", "error", err)
		}
		cancel()
	}
	return rec
}

// replyOf is the reply that tells a job's final state.
func replyOf(j job.Job) *contract.Reply {
	r := &contract.Reply{Version: contract.Version, RequestID: j.RequestID, Status: contract.Status(j.Status),
		Error: j.Error, ExecutionTime: j.ExecutionTime, WorkerID: j.WorkerID, ScriptVersion: j.ScriptVersion,
		StartedAt: j.StartedAt, FinishedAt: j.FinishedAt}
	if res := j.Result; res != nil {
		r.Data, r.ResultKey, r.ResultSize = res.Data, res.Key, res.Size
	}
	if r.Status != contract.StatusCompleted && r.Error == nil {
		r.Error = &contract.Error{Code: contract.CodeInternal, Message: "the job ended as " + string(j.Status) + " without a reason"}
	}
	return r
}

// pollCancel is the backstop to the cancel notices: every Config.CancelPoll it asks the store whether a
// cancel of the job was requested, and stops the run if so. It ends with ctx.
func (h *Handler) pollCancel(ctx context.Context, log *slog.Logger, id string, cancel context.CancelCauseFunc) {
	tick := time.NewTicker(h.cfg.CancelPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		cctx, stop := context.WithTimeout(ctx, storeCallLimit)
		asked, err := h.cfg.Jobs.CancelRequested(cctx, id)
		stop()
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("check the job's cancel marker", "error", err)
			}
			continue
		}
		if asked {
			log.Info("cancel marker found: stopping the job's run")
			cancel(errJobCancelled)
			return
		}
	}
}

// A lease is renewed every period / leaseRenewals. The lease's end recorded in the store (lease_until) is
// the time its renewal began plus the period less leaseGuard (period / (2 × leaseRenewals)), while the copy
// published with it leaves the lease queue a full period after it was published. So:
//   - a copy that comes back while its worker renews finds the lease fresh: a later renewal recorded an end
//     at least period / leaseRenewals − leaseGuard after the copy's return;
//   - a lease that runs out always has a copy in flight that comes back after it: a renewal records its end
//     only once its copy is published (the first lease records it first, while the delivery is held), so
//     the job is never left running with nobody to notice its worker is gone;
//   - a worker that cannot renew its lease stops the run when the last lease it recorded runs out
//     (errLeaseLost), at least leaseGuard before that lease's copy comes back and runs the job elsewhere:
//     the job does not run twice at once (given clocks closer than leaseGuard).
const leaseRenewals = 4

// leaseGuard is the time between a lease's recorded end and the return of its copy.
func leaseGuard(period time.Duration) time.Duration { return period / (2 * leaseRenewals) }

// errLeaseLost is the cause with which a leased job's run is stopped when its lease ran out unrenewed.
var errLeaseLost = errors.New("the job's lease ran out before it could be renewed (job store or broker unreachable); its lease copy runs it again")

// lease leases t's job: records the lease in the store, publishes a lease copy and acks the delivery, then
// renews both every period / leaseRenewals until ctx ends. A lease that runs out before it could be renewed
// stops the run: stop(errLeaseLost). It reports false, leaving the delivery held, when the first lease
// cannot be taken.
func (h *Handler) lease(ctx context.Context, log *slog.Logger, t *broker.Task, stop context.CancelCauseFunc) bool {
	period := h.cfg.Leaser.Period()
	id := t.Request.RequestID
	// take takes the lease until the returned time. The first records it, then publishes the copy (the held
	// delivery covers a failed publish); a renewal publishes first, so that the store never records a lease
	// whose copy is not in flight. A renewal gives up by held, the end of the lease it renews.
	take := func(first bool, held time.Time) (time.Time, error) {
		limit := h.cfg.Now().Add(storeCallLimit)
		if !first && held.Before(limit) {
			limit = held
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), limit.Sub(h.cfg.Now()))
		defer cancel()
		until := h.cfg.Now().Add(period - leaseGuard(period)).UTC()
		record := func() error {
			if err := h.cfg.Jobs.RenewLease(sctx, id, job.Lease{WorkerID: h.cfg.ID, Until: until}); err != nil {
				return fmt.Errorf("record the lease: %w", err)
			}
			return nil
		}
		publish := func() error {
			if err := h.cfg.Leaser.Lease(sctx, t, h.cfg.ID); err != nil {
				return fmt.Errorf("publish the lease copy: %w", err)
			}
			return nil
		}
		steps := []func() error{publish, record}
		if first {
			steps = []func() error{record, publish}
		}
		for _, step := range steps {
			if err := step(); err != nil {
				return time.Time{}, err
			}
		}
		return until, nil
	}
	held, err := take(true, time.Time{})
	if err != nil {
		log.Error("could not lease a long job; holding its delivery (the broker may close the channel at its consumer_timeout)", "error", err)
		return false
	}
	if err := t.Release(); err != nil {
		log.Warn("ack of a leased task failed; the broker redelivers it", "error", err)
	}
	log.Info("long job leased: its delivery is acked", "lease", period)
	go func() {
		tick := time.NewTicker(period / leaseRenewals)
		defer tick.Stop()
		for {
			fence := time.NewTimer(held.Sub(h.cfg.Now()))
			select {
			case <-ctx.Done():
				fence.Stop()
				return
			case <-fence.C:
				log.Error("stopping a leased job's run: its lease ran out before it could be renewed; the lease copy runs it again", "lease_until", held)
				stop(errLeaseLost)
				return
			case <-tick.C:
				fence.Stop()
			}
			until, err := take(false, held)
			switch {
			case err == nil:
				held = until
			case ctx.Err() == nil:
				log.Error("renew the job's lease", "error", err, "lease_until", held)
			}
		}
	}()
	return true
}

// takeSlot waits for a free slot for t. Prefetch equals the slots, so a task waits only behind a leased job
// (whose delivery was acked while it still holds its slot). With a leaser, a task that has waited as long
// as a delivery may be held (Config.ConsumerTimeout - Config.LeaseMargin) is parked rather than held past
// the broker's consumer_timeout: a copy goes to the lease queue, comes back after a lease period, and
// the delivery is acked. A stop (StopTaking) requeues a waiting task. It reports false when t was parked or
// requeued.
func (h *Handler) takeSlot(t *broker.Task) bool {
	if h.cfg.Leaser == nil {
		h.slots <- struct{}{}
		return true
	}
	select {
	case h.slots <- struct{}{}:
		return true
	default:
	}
	timer := time.NewTimer(h.cfg.ConsumerTimeout - h.cfg.LeaseMargin)
	defer timer.Stop()
	log := h.log.With("correlation_id", t.CorrelationID)
	select {
	case h.slots <- struct{}{}:
		return true
	case <-h.stopTaking:
		h.requeue(log, t, "worker is shutting down")
		return false
	case <-timer.C:
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.hardCtx), storeCallLimit)
	defer cancel()
	if err := h.cfg.Leaser.Lease(ctx, t, h.cfg.ID); err != nil {
		log.Error("could not park a task waiting for a slot; holding it", "error", err)
		h.slots <- struct{}{}
		return true
	}
	if err := t.Release(); err != nil {
		log.Warn("ack of a parked task failed; the broker redelivers it", "error", err)
	}
	h.cfg.Metrics.TaskRejected(RejectedParked)
	log.Info("every slot is busy with leased jobs: task parked in the lease queue for a lease period", "lease", h.cfg.Leaser.Period())
	return false
}
