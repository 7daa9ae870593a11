package job

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
)

// objects is the little an object store must offer: the S3 bucket in production, a map in unit tests.
// Keys are relative to the store's prefix. Every error other than "absent" and "precondition failed" is
// already classified (transient for an unavailable store).
type objects interface {
	// get reads key; found is false when it does not exist.
	get(ctx context.Context, key string) (data []byte, etag string, found bool, err error)
	// exists reports whether key exists.
	exists(ctx context.Context, key string) (bool, error)
	// put writes key unconditionally.
	put(ctx context.Context, key string, data []byte) error
	// putIfAbsent writes key unless it exists (If-None-Match: *); created is false when it existed.
	putIfAbsent(ctx context.Context, key string, data []byte) (created bool, err error)
	// putIfMatch replaces key if its ETag is still etag (If-Match); replaced is false otherwise.
	putIfMatch(ctx context.Context, key string, data []byte, etag string) (replaced bool, err error)
	// open streams key; ErrNotFound when it does not exist.
	open(ctx context.Context, key string) (io.ReadCloser, error)
	// presign returns a GET URL of key valid for ttl.
	presign(ctx context.Context, key string, ttl time.Duration) (string, error)
}

// engine is the store's logic over an object layer; S3 and Memory share it, so they behave alike.
type engine struct {
	objs      objects
	retention time.Duration
	urlTTL    time.Duration
	now       func() time.Time
}

// The event objects of a job: jobs/<request_id>/<event>.json.
const (
	eventQueued  = "queued"
	eventRunning = "running"
	eventFinal   = "final"
	eventCancel  = "cancel"
	eventWebhook = "webhook"
)

// CodeCancelled is the error code of a job its owner cancelled.
const CodeCancelled = contract.CodeCancelled

func eventKey(id, event string) string { return "jobs/" + id + "/" + event + ".json" }

// ResultKey is the claim-check object of a job's result, relative to the store's prefix.
func ResultKey(id string) string { return "results/" + id + ".json" }

func checkResultKey(key string) error {
	id, prefixed := strings.CutPrefix(key, "results/")
	id, suffixed := strings.CutSuffix(id, ".json")
	if !prefixed || !suffixed || !validRequestID(id) {
		return fmt.Errorf("%w: result key %q", ErrInvalid, key)
	}
	return nil
}

// idempotencyKey is where owner's Idempotency-Key lives: its SHA-256, so neither shows in the key.
func idempotencyKey(owner, key string) string {
	sum := sha256.Sum256([]byte(owner + "\x00" + key))
	return "idempotency/" + hex.EncodeToString(sum[:]) + ".json"
}

func (e *engine) getJob(ctx context.Context, id, event string) (Job, bool, error) {
	data, _, found, err := e.objs.get(ctx, eventKey(id, event))
	if err != nil || !found {
		return Job{}, false, err
	}
	var j Job
	if err := json.Unmarshal(data, &j); err != nil {
		return Job{}, false, fmt.Errorf("job %s: decode %s.json: %w", id, event, err)
	}
	return j, true, nil
}

func (e *engine) putJob(ctx context.Context, j Job, event string, ifAbsent bool) (bool, error) {
	data, err := json.Marshal(j)
	if err != nil {
		return false, fmt.Errorf("job %s: encode: %w", j.RequestID, err)
	}
	if ifAbsent {
		return e.objs.putIfAbsent(ctx, eventKey(j.RequestID, event), data)
	}
	return true, e.objs.put(ctx, eventKey(j.RequestID, event), data)
}

// Create implements Store.
func (e *engine) Create(ctx context.Context, j Job) error {
	if err := j.validate(func(s Status) bool { return s == StatusQueued }); err != nil {
		return err
	}
	if j.CallbackURL != "" && j.Webhook == nil {
		j.Webhook = &WebhookState{Status: WebhookPending}
	}
	created, err := e.putJob(ctx, j, eventQueued, true)
	if err != nil {
		return err
	}
	if !created {
		return fmt.Errorf("%w: %s", ErrExists, j.RequestID)
	}
	return nil
}

// Start implements Store.
func (e *engine) Start(ctx context.Context, j Job) error {
	if err := j.validate(func(s Status) bool { return s == StatusRunning }); err != nil {
		return err
	}
	final, found, err := e.getJob(ctx, j.RequestID, eventFinal)
	if err != nil {
		return err
	}
	if found {
		return &FinishedError{Job: final}
	}
	_, err = e.putJob(ctx, j, eventRunning, false)
	return err
}

// Finish implements Store.
func (e *engine) Finish(ctx context.Context, j Job) (Job, bool, error) {
	if err := j.validate(Status.Final); err != nil {
		return Job{}, false, err
	}
	if j.FinishedAt.IsZero() {
		return Job{}, false, fmt.Errorf("%w: job %s has no finished_at", ErrInvalid, j.RequestID)
	}
	for range 3 {
		created, err := e.putJob(ctx, j, eventFinal, true)
		if err != nil {
			return Job{}, false, err
		}
		if created {
			return j, true, nil
		}
		final, found, err := e.getJob(ctx, j.RequestID, eventFinal)
		if err != nil {
			return Job{}, false, err
		}
		if found {
			return final, false, nil
		}
		// The final object vanished between the two requests (retention): try again.
	}
	return Job{}, false, contract.Transiently(fmt.Errorf("job %s: final state kept changing", j.RequestID))
}

// cancelMarker is the content of cancel.json.
type cancelMarker struct {
	RequestedAt time.Time `json:"requested_at"`
}

// Cancel implements Store.
func (e *engine) Cancel(ctx context.Context, id, owner string, at time.Time) (Job, error) {
	j, err := e.Get(ctx, id, owner)
	if err != nil {
		return Job{}, err
	}
	if j.Status.Final() {
		return j, nil
	}
	marker, err := json.Marshal(cancelMarker{RequestedAt: at})
	if err != nil {
		return Job{}, err
	}
	if err := e.objs.put(ctx, eventKey(id, eventCancel), marker); err != nil {
		return Job{}, err
	}
	j.Status = StatusCancelled
	j.FinishedAt = at
	j.Result = nil
	j.Error = &contract.Error{Code: CodeCancelled, Message: "the job was cancelled by its owner"}
	final, _, err := e.Finish(ctx, j)
	if err != nil {
		return Job{}, err
	}
	return e.withWebhook(ctx, final)
}

// CancelRequested implements Store.
func (e *engine) CancelRequested(ctx context.Context, id string) (bool, error) {
	if err := CheckRequestID(id); err != nil {
		return false, err
	}
	return e.objs.exists(ctx, eventKey(id, eventCancel))
}

// Get implements Store. It reads the most advanced event object first: one request for a finished job
// (two with a callback), two for a running one, three for a queued one.
func (e *engine) Get(ctx context.Context, id, owner string) (Job, error) {
	if err := CheckRequestID(id); err != nil {
		return Job{}, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	for _, event := range []string{eventFinal, eventRunning, eventQueued} {
		j, found, err := e.getJob(ctx, id, event)
		if err != nil {
			return Job{}, err
		}
		if !found {
			continue
		}
		if !j.visibleTo(owner, e.retention, e.now()) {
			return Job{}, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return e.withWebhook(ctx, j)
	}
	return Job{}, fmt.Errorf("%w: %s", ErrNotFound, id)
}

// withWebhook adds the callback's delivery state to a finished job.
func (e *engine) withWebhook(ctx context.Context, j Job) (Job, error) {
	if j.CallbackURL == "" || !j.Status.Final() {
		return j, nil
	}
	data, _, found, err := e.objs.get(ctx, eventKey(j.RequestID, eventWebhook))
	if err != nil || !found {
		return j, err
	}
	var w WebhookState
	if err := json.Unmarshal(data, &w); err != nil {
		return Job{}, fmt.Errorf("job %s: decode webhook.json: %w", j.RequestID, err)
	}
	j.Webhook = &w
	return j, nil
}

// SetWebhook implements Store.
func (e *engine) SetWebhook(ctx context.Context, id string, w WebhookState) error {
	if err := CheckRequestID(id); err != nil {
		return err
	}
	data, err := json.Marshal(w)
	if err != nil {
		return err
	}
	return e.objs.put(ctx, eventKey(id, eventWebhook), data)
}

// PutResult implements Store.
func (e *engine) PutResult(ctx context.Context, id string, data []byte) (string, error) {
	if err := CheckRequestID(id); err != nil {
		return "", err
	}
	key := ResultKey(id)
	return key, e.objs.put(ctx, key, data)
}

// OpenResult implements Store.
func (e *engine) OpenResult(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkResultKey(key); err != nil {
		return nil, err
	}
	return e.objs.open(ctx, key)
}

// ResultURL implements Store.
func (e *engine) ResultURL(ctx context.Context, key string) (string, error) {
	if err := checkResultKey(key); err != nil {
		return "", err
	}
	return e.objs.presign(ctx, key, e.urlTTL)
}

// idempotencyEntry is the content of idempotency/<hash>.json.
type idempotencyEntry struct {
	RequestID  string    `json:"request_id"`
	BodySHA256 string    `json:"body_sha256"`
	CreatedAt  time.Time `json:"created_at"`
}

// MaxIdempotencyKey bounds an Idempotency-Key's length.
const MaxIdempotencyKey = 255

// Claim implements Store.
func (e *engine) Claim(ctx context.Context, owner, key, bodyHash, newRequestID string) (string, bool, error) {
	switch {
	case owner == "":
		return "", false, fmt.Errorf("%w: idempotency claim without an owner", ErrInvalid)
	case key == "" || len(key) > MaxIdempotencyKey:
		return "", false, fmt.Errorf("%w: idempotency key must be 1 to %d characters", ErrInvalid, MaxIdempotencyKey)
	case bodyHash == "":
		return "", false, fmt.Errorf("%w: idempotency claim without a body hash", ErrInvalid)
	}
	if err := CheckRequestID(newRequestID); err != nil {
		return "", false, err
	}
	objKey := idempotencyKey(owner, key)
	mine, err := json.Marshal(idempotencyEntry{RequestID: newRequestID, BodySHA256: bodyHash, CreatedAt: e.now()})
	if err != nil {
		return "", false, err
	}
	for range 5 {
		created, err := e.objs.putIfAbsent(ctx, objKey, mine)
		if err != nil {
			return "", false, err
		}
		if created {
			return newRequestID, false, nil
		}
		data, etag, found, err := e.objs.get(ctx, objKey)
		if err != nil {
			return "", false, err
		}
		if !found {
			continue // expired and removed in between: claim it again
		}
		var have idempotencyEntry
		if err := json.Unmarshal(data, &have); err != nil {
			return "", false, fmt.Errorf("decode idempotency entry: %w", err)
		}
		if e.now().Sub(have.CreatedAt) > IdempotencyWindow {
			// Stale: take it over, unless someone else does first.
			replaced, err := e.objs.putIfMatch(ctx, objKey, mine, etag)
			if err != nil {
				return "", false, err
			}
			if replaced {
				return newRequestID, false, nil
			}
			continue
		}
		if have.BodySHA256 != bodyHash {
			return "", true, ErrIdempotencyConflict
		}
		return have.RequestID, true, nil
	}
	return "", false, contract.Transiently(errors.New("idempotency key kept changing under concurrent claims"))
}

// BodyHash is the hash Claim compares: hex SHA-256 of the request body as received.
func BodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}
