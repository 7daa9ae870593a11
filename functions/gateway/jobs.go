package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/job"
)

// JobStore is what the handler needs of the job store (job.Store; job.NewMemory in unit tests).
type JobStore interface {
	Create(ctx context.Context, j job.Job) error
	Finish(ctx context.Context, j job.Job) (final job.Job, won bool, err error)
	Cancel(ctx context.Context, id, owner string, at time.Time) (job.Job, error)
	Get(ctx context.Context, id, owner string) (job.Job, error)
	OpenResult(ctx context.Context, key string) (io.ReadCloser, error)
	ResultURL(ctx context.Context, key string) (string, error)
	Claim(ctx context.Context, owner, key, bodyHash, newRequestID string) (requestID string, existed bool, err error)
}

var _ JobStore = job.Store(nil)

// Callbacks hands a finished job with a callback_url to the webhook deliverer (shared/webhook's Outbox).
// The handler enqueues when its cancel ended the job; nil: no callbacks are sent from here.
type Callbacks interface {
	Enqueue(ctx context.Context, j job.Job) error
}

// canceller is what a Broker may also do: tell every worker to stop a job (broker.RPCClient.NotifyCancel).
type canceller interface {
	NotifyCancel(ctx context.Context, requestID string) error
}

var _ canceller = (*broker.RPCClient)(nil)

// claimGrace is how long a request that finds its Idempotency-Key claimed waits for the claiming request to
// record the job before it takes the claim over.
const claimGrace = 2 * time.Second

// publishAllowance is how long a job's task may take to be confirmed by the broker when the sync window is
// shorter (respond-async): the answer waits for the confirm, so a 202 means the task is queued.
const publishAllowance = 10 * time.Second

// The modes of scraping_gateway_jobs_accepted_total.
const (
	ModeSync  = "sync"
	ModeAsync = "async"
)

// JobResponse is the body of GET /jobs/{id}, of a 202 answer, and of a 200 answer read from the job store:
// the sync body (ScrapeResponse) with the job's status and times, and the callback's delivery state.
type JobResponse struct {
	RequestID string          `json:"request_id"`
	Status    job.Status      `json:"status"`
	Data      json.RawMessage `json:"data"`
	// DataURL is a presigned GET of a result too large to inline (GATEWAY_INLINE_RESULT_MB); data is null.
	DataURL       string         `json:"data_url,omitempty"`
	ResultSize    int64          `json:"result_size,omitempty"`
	Error         *string        `json:"error"`
	ErrorCode     *contract.Code `json:"error_code"`
	ErrorType     string         `json:"error_type,omitempty"`
	ErrorDetail   string         `json:"error_detail,omitempty"`
	ExecutionTime float64        `json:"execution_time"`
	// TotalTime is from created_at to finished_at, or to now while the job is not finished.
	TotalTime     float64           `json:"total_time"`
	WorkerID      string            `json:"worker_id"`
	ScriptName    string            `json:"script_name"`
	ScriptVersion string            `json:"script_version,omitempty"`
	CreatedAt     time.Time         `json:"created_at"`
	StartedAt     *time.Time        `json:"started_at"`
	FinishedAt    *time.Time        `json:"finished_at"`
	CallbackURL   string            `json:"callback_url,omitempty"`
	Webhook       *job.WebhookState `json:"webhook,omitempty"`
}

// owner is whose jobs a principal sees: its client id when it has one, else its subject.
func (p Principal) owner() string {
	if p.ClientID != "" {
		return p.ClientID
	}
	return p.Subject
}

// bodyHash fingerprints a scrape for its Idempotency-Key: the validated fields, so the same request sent
// with other whitespace is the same request.
func bodyHash(in scrapeInput) string {
	b, _ := json.Marshal(struct {
		Script      string          `json:"s"`
		Params      json.RawMessage `json:"p"`
		Timeout     float64         `json:"t"`
		Defaulted   bool            `json:"d"`
		CallbackURL string          `json:"c"`
	}{in.req.ScriptName, in.req.Parameters, float64(in.req.Timeout), in.req.TimeoutDefaulted, in.callbackURL})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// scrapeJob runs a scrape recorded as a job: claim the Idempotency-Key, record the job, publish the task and
// wait for its reply through the sync window; 200 with the result when it comes in time, else 202 with the
// job's Location.
func (h *Handler) scrapeJob(w http.ResponseWriter, r *http.Request, log *slog.Logger, p Principal, in scrapeInput, prefs preferences, key string, syncWait time.Duration) {
	start := in.req.Accepted
	id := in.req.RequestID
	owner := p.owner()
	if key != "" {
		claimed, existed, err := h.jobs.Claim(r.Context(), owner, key, bodyHash(in), id)
		switch {
		case errors.Is(err, job.ErrIdempotencyConflict):
			log.Info("idempotency key reused with another body")
			writeError(w, http.StatusUnprocessableEntity, contract.CodeIdempotencyConflict,
				"this Idempotency-Key was used within 24 h with a different request; use a new key for a new request", id)
			return
		case err != nil:
			h.storeFailed(w, log, id, err)
			return
		case existed:
			log.Info("idempotent replay", "job", claimed)
			// The job of the first request with this key: its result if it ends within the window, else 202.
			// The first request may still be recording it, so a job not found yet gets a moment more.
			windowEnd := start.Add(syncWait)
			j, err := h.pollJob(r.Context(), claimed, owner, windowEnd, later(windowEnd, h.now().Add(claimGrace)))
			if !errors.Is(err, job.ErrNotFound) {
				if prefs.respondAsync || prefs.hasWait {
					w.Header().Set("Preference-Applied", prefs.applied(syncWait))
				}
				if err != nil {
					h.storeFailed(w, log, id, err)
					return
				}
				h.writeJob(w, r, log, j, false)
				return
			}
			// The first request claimed the key but recorded no job (it failed in between): this request
			// takes the claim over. Create is conditional, so if the first one records it after all, exactly
			// one of the two publishes.
			log.Warn("the first request with this Idempotency-Key recorded no job; taking it over", "job", claimed)
			id = claimed
			in.req.RequestID = claimed
		}
	}
	req := in.req
	req.Job = &contract.JobTicket{Owner: owner, CallbackURL: in.callbackURL}
	hardStop, _ := r.Context().Deadline()
	req.Budget = contract.NewJobBudget(start, req.Timeout.Duration(), h.cfg.ReplyGrace, h.cfg.QueueWait, syncWait, hardStop)
	j := job.Job{RequestID: id, Owner: owner, ScriptName: in.req.ScriptName, Status: job.StatusQueued, CreatedAt: start.UTC(),
		CallbackURL: in.callbackURL, Deadline: req.Deadline.UTC()}
	if err := h.jobs.Create(r.Context(), j); err != nil {
		if errors.Is(err, job.ErrExists) && key != "" {
			// A request with the same Idempotency-Key recorded the job first: answer it.
			h.answerExisting(w, r, log, id, owner, start.Add(syncWait), prefs, syncWait)
			return
		}
		if contract.Classify(err) == contract.Transient && !prefs.respondAsync && key == "" && in.callbackURL == "" {
			// The store is down: a plain scrape still runs synchronously, as without a store.
			log.Warn("job store unavailable: running the scrape synchronously", "error", err)
			h.scrapeSync(w, r, log, in.req, syncWait)
			return
		}
		h.storeFailed(w, log, id, err)
		return
	}
	if prefs.respondAsync || prefs.hasWait {
		w.Header().Set("Preference-Applied", prefs.applied(syncWait))
	}
	reply, published, err := h.callUntil(r.Context(), &req, hardStop)
	switch {
	case err == nil:
		h.rec.JobAccepted(ModeSync)
		h.answerReply(w, r, log, req, reply)
		return
	case !published:
		// The task never reached the queue (or the client left first): the job ends here, so no worker runs
		// it later.
		if callErrorCode(err) == contract.CodeNoWorkerResponse {
			// The publish was not confirmed in time: the broker's fault, not the workers'.
			err = contract.WithCode(contract.CodeBrokerUnavailable, err)
		}
		j.Status, j.FinishedAt = job.StatusFailed, h.now().UTC()
		j.Error = &contract.Error{Code: callErrorCode(err), Message: "the task could not be handed to the message broker"}
		if _, _, ferr := h.jobs.Finish(context.WithoutCancel(r.Context()), j); ferr != nil {
			log.Error("could not record the failed job", "error", ferr)
		}
		h.callFailed(w, r, log, id, req, err) // 499 when the client left
		return
	case r.Context().Err() != nil:
		log.Info("client went away before the reply; the job goes on", "error", err)
		writeError(w, 499, contract.CodeInternal, "client closed the request", id)
		return
	}
	// The window ended with the task queued: the job's state as the store has it.
	h.answerJob(w, r, log, id, owner, false)
}

// callUntil publishes req and waits for its reply until req.WaitUntil(). When the window ends first it
// returns published true (and no reply) if the broker confirmed the task, so the job goes on without the
// gateway; a task not yet confirmed gets up to publishAllowance (within hardStop) to be.
func (h *Handler) callUntil(ctx context.Context, req *contract.Request, hardStop time.Time) (*contract.Reply, bool, error) {
	waitUntil := req.WaitUntil()
	callDeadline := waitUntil
	if allowed := h.now().Add(publishAllowance); allowed.After(callDeadline) {
		callDeadline = allowed
	}
	if !hardStop.IsZero() {
		if stop := hardStop.Add(-contract.InvocationMargin); stop.Before(callDeadline) {
			callDeadline = stop
		}
	}
	callCtx, cancel := context.WithDeadline(ctx, callDeadline)
	defer cancel()
	published := make(chan struct{})
	var once sync.Once
	callCtx = broker.WithPublished(callCtx, func() { once.Do(func() { close(published) }) })
	if c, ok := h.broker.(idleChecker); ok && h.cfg.IdleCheck > 0 {
		c.CheckIdle(callCtx, h.cfg.IdleCheck, time.Second)
	}
	type result struct {
		rep *contract.Reply
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := h.broker.Call(callCtx, req)
		done <- result{rep, err}
	}()
	isPublished := func() bool {
		select {
		case <-published:
			return true
		default:
			return false
		}
	}
	timer := time.NewTimer(max(waitUntil.Sub(h.now()), 0))
	defer timer.Stop()
	select {
	case res := <-done:
		return res.rep, isPublished(), res.err
	case <-timer.C:
	}
	select {
	case res := <-done:
		return res.rep, isPublished(), res.err
	case <-published:
		cancel()
		res := <-done // prompt once cancelled; a reply that raced the window is taken
		return res.rep, true, res.err
	}
}

// answerReply answers 200 with a worker's reply, inlining or presigning a claim-checked result.
func (h *Handler) answerReply(w http.ResponseWriter, r *http.Request, log *slog.Logger, req contract.Request, reply *contract.Reply) {
	start := req.Accepted
	resp := ScrapeResponse{
		RequestID: req.RequestID, Status: reply.Status, Data: reply.Data, ExecutionTime: reply.ExecutionTime,
		TotalTime: h.now().Sub(start).Seconds(), WorkerID: reply.WorkerID, ScriptName: req.ScriptName,
		ScriptVersion: reply.ScriptVersion,
	}
	if reply.ResultKey != "" {
		data, url, err := h.result(r.Context(), &job.Result{Key: reply.ResultKey, Size: reply.ResultSize})
		if err != nil {
			h.storeFailed(w, log, req.RequestID, err)
			return
		}
		resp.Data, resp.DataURL, resp.ResultSize = data, url, reply.ResultSize
	}
	if len(resp.Data) == 0 {
		resp.Data = json.RawMessage("null")
	}
	if e := reply.Error; e != nil {
		resp.Error, resp.ErrorCode, resp.ErrorType, resp.ErrorDetail = &e.Message, &e.Code, e.Type, e.Detail
	}
	h.rec.ObserveScrape(reply.Status, h.now().Sub(start))
	log.Info("scrape answered", "status", reply.Status, "worker_id", reply.WorkerID, "duration_ms", h.now().Sub(start).Milliseconds())
	writeJSON(w, http.StatusOK, resp)
}

// result returns a claim-checked result inline when it fits GATEWAY_INLINE_RESULT_MB, else its presigned URL.
func (h *Handler) result(ctx context.Context, res *job.Result) (json.RawMessage, string, error) {
	if res.Key == "" {
		return res.Data, "", nil
	}
	if res.Size <= h.cfg.InlineResultBytes {
		rc, err := h.jobs.OpenResult(ctx, res.Key)
		if err != nil {
			return nil, "", err
		}
		defer rc.Close()
		data, err := io.ReadAll(io.LimitReader(rc, h.cfg.InlineResultBytes+1))
		if err != nil {
			return nil, "", contract.Transiently(fmt.Errorf("read result %s: %w", res.Key, err))
		}
		if int64(len(data)) <= h.cfg.InlineResultBytes && json.Valid(data) {
			return data, "", nil
		}
	}
	url, err := h.jobs.ResultURL(ctx, res.Key)
	return nil, url, err
}

// answerExisting answers the job another request with the same Idempotency-Key recorded: its result when
// it finishes within the window, else 202.
func (h *Handler) answerExisting(w http.ResponseWriter, r *http.Request, log *slog.Logger, id, owner string, until time.Time, prefs preferences, syncWait time.Duration) {
	if prefs.respondAsync || prefs.hasWait {
		w.Header().Set("Preference-Applied", prefs.applied(syncWait))
	}
	j, err := h.pollJob(r.Context(), id, owner, until, later(until, h.now().Add(claimGrace)))
	if errors.Is(err, job.ErrNotFound) {
		// The first request has not recorded its job (yet): it is being submitted; answer where it will be.
		w.Header().Set("Location", jobLocation(r, id))
		writeJSON(w, http.StatusAccepted, JobResponse{RequestID: id, Status: job.StatusQueued, Data: json.RawMessage("null"), CreatedAt: h.now().UTC()})
		return
	}
	if err != nil {
		h.storeFailed(w, log, id, err)
		return
	}
	h.writeJob(w, r, log, j, false)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// pollJob reads the owner's job until it is final or until passes (then it returns the job as it stands).
// A job not found is looked for again until notFoundUntil (zero: not at all).
func (h *Handler) pollJob(ctx context.Context, id, owner string, until, notFoundUntil time.Time) (job.Job, error) {
	interval := 100 * time.Millisecond
	for {
		j, err := h.readJob(ctx, id, owner)
		end := until
		switch {
		case err == nil && j.Status.Final():
			return j, nil
		case errors.Is(err, job.ErrNotFound):
			end = notFoundUntil
		case err != nil:
			return j, err
		}
		left := end.Sub(h.now())
		if left <= 0 {
			return j, err
		}
		select {
		case <-ctx.Done():
			return j, ctx.Err()
		case <-time.After(min(interval, left)):
		}
		interval = min(interval*2, time.Second)
	}
}

// lostJobMargin is how long past its deadline a job may still be queued or running before readers finish
// it as lost: its worker may still be recording its end (a claim-checked result on its way to the store).
const lostJobMargin = time.Minute

// readJob reads the job; one still queued or running lostJobMargin past its deadline was lost (its task
// dead-lettered after repeated worker failures, or expired in the queue; its worker gone for good) and is
// finished here as failed (worker_lost), with its callback, so no client polls it forever. Finish is a
// conditional write: a worker that records the job's end at the same moment wins or loses as a whole.
func (h *Handler) readJob(ctx context.Context, id, owner string) (job.Job, error) {
	j, err := h.jobs.Get(ctx, id, owner)
	if err != nil || j.Status.Final() || j.Deadline.IsZero() || !h.now().After(j.Deadline.Add(lostJobMargin)) {
		return j, err
	}
	lost := j
	lost.Status, lost.FinishedAt, lost.Result = job.StatusFailed, h.now().UTC(), nil
	lost.Error = &contract.Error{Code: contract.CodeWorkerLost, Message: fmt.Sprintf(
		"no worker finished the job by its deadline (%s): its task was dead-lettered or expired in the queue, or its worker was lost; submit it again",
		j.Deadline.UTC().Format(time.RFC3339))}
	final, won, err := h.jobs.Finish(context.WithoutCancel(ctx), lost)
	if err != nil {
		return j, err
	}
	if won {
		h.log.Warn("job lost: finished as failed", "job", id, "was", j.Status, "deadline", j.Deadline)
		if h.callbacks != nil && final.CallbackURL != "" {
			if err := h.callbacks.Enqueue(context.WithoutCancel(ctx), final); err != nil {
				h.log.Error("could not enqueue the lost job's callback", "job", id, "error", err)
			}
		}
	}
	return final, nil
}

// answerJob reads the job and answers it: 200 when final (the result), else 202 (or 200 for GET).
func (h *Handler) answerJob(w http.ResponseWriter, r *http.Request, log *slog.Logger, id, owner string, get bool) {
	j, err := h.readJob(r.Context(), id, owner)
	if err != nil {
		h.storeFailed(w, log, id, err)
		return
	}
	if !get {
		mode := ModeAsync
		if j.Status.Final() {
			mode = ModeSync
		}
		h.rec.JobAccepted(mode)
	}
	h.writeJob(w, r, log, j, get)
}

// writeJob answers j: for GET /jobs/{id} always 200; for a submission 200 when final, else 202 + Location.
func (h *Handler) writeJob(w http.ResponseWriter, r *http.Request, log *slog.Logger, j job.Job, get bool) {
	resp, err := h.jobResponse(r.Context(), j)
	if err != nil {
		h.storeFailed(w, log, j.RequestID, err)
		return
	}
	status := http.StatusOK
	if !get && !j.Status.Final() {
		status = http.StatusAccepted
		w.Header().Set("Location", jobLocation(r, j.RequestID))
		log.Info("scrape accepted as a job", "status", j.Status)
	}
	writeJSON(w, status, resp)
}

// jobResponse is j's body.
func (h *Handler) jobResponse(ctx context.Context, j job.Job) (JobResponse, error) {
	resp := JobResponse{RequestID: j.RequestID, Status: j.Status, Data: json.RawMessage("null"), ExecutionTime: j.ExecutionTime,
		WorkerID: j.WorkerID, ScriptName: j.ScriptName, ScriptVersion: j.ScriptVersion, CreatedAt: j.CreatedAt.UTC(),
		CallbackURL: j.CallbackURL, Webhook: j.Webhook}
	if !j.StartedAt.IsZero() {
		t := j.StartedAt.UTC()
		resp.StartedAt = &t
	}
	end := h.now()
	if !j.FinishedAt.IsZero() {
		t := j.FinishedAt.UTC()
		resp.FinishedAt, end = &t, t
	}
	resp.TotalTime = max(end.Sub(j.CreatedAt).Seconds(), 0)
	if res := j.Result; res != nil {
		data, url, err := h.result(ctx, res)
		if err != nil {
			return resp, err
		}
		if len(data) > 0 {
			resp.Data = data
		}
		resp.DataURL, resp.ResultSize = url, res.Size
	}
	if e := j.Error; e != nil {
		resp.Error, resp.ErrorCode, resp.ErrorType, resp.ErrorDetail = &e.Message, &e.Code, e.Type, e.Detail
	}
	return resp, nil
}

// storeFailed answers a job store error: 404 for a job the caller does not have, 503 with Retry-After when
// the store is unreachable, 500 otherwise.
func (h *Handler) storeFailed(w http.ResponseWriter, log *slog.Logger, id string, err error) {
	switch {
	case errors.Is(err, job.ErrNotFound):
		writeError(w, http.StatusNotFound, contract.CodeJobNotFound, "no such job: the id is unknown, expired, or not yours", id)
	case contract.Classify(err) == contract.Transient || errors.Is(err, errNoJobStore):
		log.Error("job store unavailable", "error", err)
		if !errors.Is(err, errNoJobStore) {
			w.Header().Set("Retry-After", retryAfterStoreUnavailable)
		}
		writeError(w, http.StatusServiceUnavailable, contract.CodeJobStoreUnavailable, jobStoreMessage(err), id)
	default:
		log.Error("job store failed", "error", err)
		writeError(w, http.StatusInternalServerError, contract.CodeInternal, "internal error: the job store failed", id)
	}
}

// errNoJobStore: the gateway runs without a job store (no JOB_STORE_BUCKET).
var errNoJobStore = errors.New("this gateway has no job store (JOB_STORE_BUCKET is not set)")

func jobStoreMessage(err error) string {
	if errors.Is(err, errNoJobStore) {
		return "jobs are not available: " + errNoJobStore.Error() + "; send the scrape without Prefer: respond-async, Idempotency-Key and callback_url"
	}
	return "the job store cannot be reached right now; retry later (a scrape without Prefer: respond-async, Idempotency-Key and callback_url still runs synchronously)"
}

type basePathKey struct{}

// WithBasePath returns r carrying the path prefix under which a client reached the handler (the Lambda
// bootstrap's /iam routes), so that a job's Location names the route the client can use.
func WithBasePath(r *http.Request, prefix string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), basePathKey{}, prefix))
}

// jobLocation is the Location of job id as the client of r reaches it.
func jobLocation(r *http.Request, id string) string {
	prefix, _ := r.Context().Value(basePathKey{}).(string)
	return prefix + "/jobs/" + id
}

// jobID reads {id} of /jobs/{id}.
func jobID(r *http.Request) string { return r.PathValue("id") }

// getJob serves GET /jobs/{id}[?wait=N].
func (h *Handler) getJob(w http.ResponseWriter, r *http.Request, p Principal) {
	rid := requestID(r)
	id := jobID(r)
	log := h.log.With("request_id", rid, "subject", p.Subject, "job", id)
	var wait time.Duration
	if v := r.URL.Query()["wait"]; len(v) > 0 {
		n, err := strconv.ParseUint(v[0], 10, 32)
		if err != nil || len(v) > 1 {
			writeError(w, http.StatusBadRequest, contract.CodeInvalidRequest, "wait must be a whole number of seconds, from 0 to 20 (?wait=10)", rid)
			return
		}
		wait = min(time.Duration(n)*time.Second, MaxJobWait)
	}
	if h.jobs == nil {
		h.storeFailed(w, log, rid, errNoJobStore)
		return
	}
	if job.CheckRequestID(id) != nil {
		h.storeFailed(w, log, rid, job.ErrNotFound)
		return
	}
	until := h.now().Add(wait)
	if hardStop, ok := r.Context().Deadline(); ok {
		if stop := hardStop.Add(-contract.InvocationMargin); stop.Before(until) {
			until = stop
		}
	}
	j, err := h.pollJob(r.Context(), id, p.owner(), until, time.Time{})
	if err != nil {
		if r.Context().Err() != nil {
			writeError(w, 499, contract.CodeInternal, "client closed the request", rid)
			return
		}
		h.storeFailed(w, log, rid, err)
		return
	}
	h.writeJob(w, r, log, j, true)
}

// deleteJob serves DELETE /jobs/{id}: the job is cancelled unless it has finished; the workers are told at
// once (a running job's process tree is killed) and learn it from the store otherwise.
func (h *Handler) deleteJob(w http.ResponseWriter, r *http.Request, p Principal) {
	rid := requestID(r)
	id := jobID(r)
	log := h.log.With("request_id", rid, "subject", p.Subject, "job", id)
	if h.jobs == nil {
		h.storeFailed(w, log, rid, errNoJobStore)
		return
	}
	if job.CheckRequestID(id) != nil {
		h.storeFailed(w, log, rid, job.ErrNotFound)
		return
	}
	at := h.now().UTC()
	j, err := h.jobs.Cancel(r.Context(), id, p.owner(), at)
	if err != nil {
		h.storeFailed(w, log, rid, err)
		return
	}
	won := j.Status == job.StatusCancelled && j.FinishedAt.Equal(at)
	if won {
		ctx := context.WithoutCancel(r.Context())
		if c, ok := h.broker.(canceller); ok {
			if err := c.NotifyCancel(ctx, id); err != nil {
				// The workers' backstop (job.Store.CancelRequested) still stops the job.
				log.Warn("cancel notice not sent; workers will see the cancel in the job store", "error", err)
			}
		}
		if h.callbacks != nil && j.CallbackURL != "" {
			if err := h.callbacks.Enqueue(ctx, j); err != nil {
				log.Error("could not enqueue the cancelled job's callback", "error", err)
			}
		}
		log.Info("job cancelled")
	}
	h.writeJob(w, r, log, j, true)
}
