package job

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
)

// Status is where a job is in its life.
type Status string

// The statuses. Queued and Running are transient; the other four are final: once one is recorded it never
// changes.
const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusTimeout   Status = "timeout"
	StatusCancelled Status = "cancelled"
)

// Final reports whether s is one of the four final statuses.
func (s Status) Final() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusTimeout, StatusCancelled:
		return true
	}
	return false
}

// Job is the job document: what GET /jobs/{id} shows, what a webhook delivers, and what each event object
// of the store holds (each holds the whole document as of its event).
type Job struct {
	RequestID string `json:"request_id"`
	// Owner is the token's subject or client id; only the owner sees the job.
	Owner      string    `json:"owner"`
	ScriptName string    `json:"script_name"`
	Status     Status    `json:"status"`
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// Deadline is when the job must have finished (its task's budget: queue wait, timeout and grace). A
	// job still queued or running well after it was lost (its task dead-lettered or expired, its worker
	// gone); readers finish it as failed (worker_lost). Zero: not known (older records).
	Deadline time.Time `json:"deadline,omitzero"`
	// WorkerID names the worker that runs or ran the job.
	WorkerID string `json:"worker_id,omitempty"`
	// ExecutionTime is the script's run time in seconds, as the worker measured it.
	ExecutionTime float64 `json:"execution_time,omitempty"`
	// ScriptVersion identifies the exact script content that ran.
	ScriptVersion string `json:"script_version,omitempty"`
	// Result is the script's value, inline or claim-checked; set on completed jobs.
	Result *Result `json:"result,omitempty"`
	// Error says why a job failed, timed out or was cancelled.
	Error *contract.Error `json:"error,omitempty"`
	// CallbackURL is where the final job is POSTed, if the client asked for it.
	CallbackURL string `json:"callback_url,omitempty"`
	// Webhook is the delivery state of the callback (nil without a CallbackURL).
	Webhook *WebhookState `json:"webhook,omitempty"`
}

// Result is a completed job's value: inline Data when small, otherwise Key names the claim-check object
// (results/<request_id>.json in the store) that holds it.
type Result struct {
	Data json.RawMessage `json:"data,omitempty"`
	Key  string          `json:"result_key,omitempty"`
	// Size is the value's size in bytes (of Data, or of the object at Key).
	Size int64 `json:"size"`
}

// The webhook delivery statuses.
const (
	WebhookPending   = "pending"
	WebhookDelivered = "delivered"
	WebhookFailed    = "failed"
)

// WebhookState is how the callback delivery is going.
type WebhookState struct {
	// Status is WebhookPending, WebhookDelivered or WebhookFailed (retries exhausted).
	Status    string `json:"status"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"`
	// UpdatedAt is when the state last changed.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// maxRequestIDLength bounds a request id: it becomes part of object keys.
const maxRequestIDLength = 128

// validRequestID reports whether id is 1 to 128 ASCII letters, digits, "-" and "_". A loop, not a regexp:
// `[A-Za-z0-9_-]{1,128}` compiles to 128 copies of its class, 2–3 ms at every start of the worker binary,
// which is also the start of every contained run's namespace helper.
func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// CheckRequestID reports an id that cannot name a job (empty, too long, or with characters other than
// letters, digits, "-" and "_").
func CheckRequestID(id string) error {
	if !validRequestID(id) {
		return fmt.Errorf("%w: request id %q", ErrInvalid, id)
	}
	return nil
}

// validate checks what every stored document needs.
func (j Job) validate(want func(Status) bool) error {
	if err := CheckRequestID(j.RequestID); err != nil {
		return err
	}
	if j.Owner == "" {
		return fmt.Errorf("%w: job %s has no owner", ErrInvalid, j.RequestID)
	}
	if !want(j.Status) {
		return fmt.Errorf("%w: job %s has status %q here", ErrInvalid, j.RequestID, j.Status)
	}
	if j.CreatedAt.IsZero() {
		return fmt.Errorf("%w: job %s has no created_at", ErrInvalid, j.RequestID)
	}
	if r := j.Result; r != nil && (len(r.Data) > 0) == (r.Key != "") {
		return fmt.Errorf("%w: job %s: a result holds either inline data or a result key", ErrInvalid, j.RequestID)
	}
	return nil
}

// visibleTo reports whether owner may see j within retention at now.
func (j Job) visibleTo(owner string, retention time.Duration, now time.Time) bool {
	return owner != "" && j.Owner == owner && (retention <= 0 || now.Sub(j.CreatedAt) <= retention)
}
