package job

import (
	"context"
	"errors"
	"io"
	"time"
)

// Store keeps jobs, their claim-checked results and the idempotency keys. Both implementations (S3 and
// Memory) pass the same conformance tests; users define their own smaller interfaces over them.
type Store interface {
	// Create records a new job (status queued) as the gateway accepts it; ErrExists if the id is taken.
	Create(ctx context.Context, j Job) error
	// Start records that a worker runs the job (status running, with started_at and worker_id);
	// ErrFinished (with the final job) if the job already has a final state, e.g. it was cancelled while
	// queued: the worker must then not run it. Start and Finish take the whole document: the worker
	// rebuilds it from the task (request_id, owner, script_name, callback_url, and created_at from the
	// message's timestamp), so it never reads queued.json first.
	Start(ctx context.Context, j Job) error
	// Finish records the final state j unless one is recorded already: exactly one final state wins. It
	// returns the recorded final job and whether it is j.
	Finish(ctx context.Context, j Job) (final Job, won bool, err error)
	// Cancel marks the owner's job as cancel-requested and records it as cancelled unless it has finished
	// already; it returns the job as it now stands (a finished job stays as it finished). Repeating it is
	// harmless. ErrNotFound for an unknown job or another owner's.
	Cancel(ctx context.Context, id, owner string, at time.Time) (Job, error)
	// CancelRequested reports whether a cancel was requested for the job (the worker's backstop to the
	// broker's cancel notice).
	CancelRequested(ctx context.Context, id string) (bool, error)
	// Get returns the owner's job as it now stands; ErrNotFound for an unknown job, another owner's job,
	// or one older than the retention.
	Get(ctx context.Context, id, owner string) (Job, error)
	// SetWebhook records the callback's delivery state (the deliverer is its only writer).
	SetWebhook(ctx context.Context, id string, w WebhookState) error
	// PutResult stores a result too large to travel inline (the claim check) and returns its key.
	PutResult(ctx context.Context, id string, data []byte) (key string, err error)
	// OpenResult reads a claim-checked result.
	OpenResult(ctx context.Context, key string) (io.ReadCloser, error)
	// ResultURL returns a presigned GET URL of a claim-checked result, valid for the configured lifetime.
	ResultURL(ctx context.Context, key string) (string, error)
	// Claim binds an Idempotency-Key of owner to a request. The first claim of a key (or the first after
	// its entry is older than IdempotencyWindow) records newRequestID and returns it with existed false;
	// later claims with the same bodyHash return the recorded request id with existed true; a different
	// bodyHash gives ErrIdempotencyConflict. Racing claims agree on one request id.
	Claim(ctx context.Context, owner, key, bodyHash, newRequestID string) (requestID string, existed bool, err error)
}

// IdempotencyWindow is how long an Idempotency-Key binds its request.
const IdempotencyWindow = 24 * time.Hour

// The store's errors. Failures of the storage itself are wrapped with contract.Transiently, so
// contract.Classify tells the gateway to answer 503 with Retry-After.
var (
	// ErrNotFound: no such job for this owner, or no such result.
	ErrNotFound = errors.New("job: not found")
	// ErrExists: a job with this request id exists already.
	ErrExists = errors.New("job: request id already used")
	// ErrFinished: the job already has a final state.
	ErrFinished = errors.New("job: already finished")
	// ErrIdempotencyConflict: the Idempotency-Key was used with a different request body.
	ErrIdempotencyConflict = errors.New("job: idempotency key reused with a different request body")
	// ErrInvalid: the caller passed a document or id the store refuses.
	ErrInvalid = errors.New("job: invalid")
)

// FinishedError is ErrFinished with the job's final state.
type FinishedError struct{ Job Job }

func (e *FinishedError) Error() string {
	return "job " + e.Job.RequestID + " already finished as " + string(e.Job.Status)
}

// Is makes errors.Is(err, ErrFinished) true.
func (e *FinishedError) Is(target error) bool { return target == ErrFinished }
