package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/job"
)

// MessageType is the AMQP type of a webhook delivery message.
const MessageType = "webhook.delivery"

// MaxCarriedBody is the largest delivery body a message carries itself. A larger final job (a big inline
// result) travels as a reference, and the deliverer reads it from the job store at each attempt, so no
// message nears Amazon MQ's 512 KiB limit.
const MaxCarriedBody = 384 << 10

// message is the body of a webhook delivery message, on <task>.webhooks and its delay and dead queues.
//
// It carries the delivery body itself, built once at Enqueue, rather than re-reading the job at each
// attempt: the final job never changes, so the copy cannot go stale; every attempt then sends the very
// same bytes (same signed content, same webhook-id); an attempt costs no store read; and the body of a
// job past its retention (7 days, much longer than WEBHOOK_MAX_AGE) is never needed. Only a body larger
// than MaxCarriedBody is left out (Body empty) and read from the store by request id and owner.
type message struct {
	RequestID string `json:"request_id"`
	// Owner lets the deliverer read the job from the store when Body is empty; it is never sent out.
	Owner       string `json:"owner"`
	CallbackURL string `json:"callback_url"`
	// Attempt is the number of the attempt this message is for: 1 for the first.
	Attempt int `json:"attempt"`
	// FirstAttempt is when the delivery was enqueued: WEBHOOK_MAX_AGE counts from it.
	FirstAttempt time.Time `json:"first_attempt_at"`
	// Body is the delivery body (see Payload), or empty when it is read from the store.
	Body json.RawMessage `json:"body,omitempty"`
	// LastError is why the previous attempt failed (on retries and dead letters).
	LastError string `json:"last_error,omitempty"`
}

// MaxMessage bounds a message the deliverer decodes.
const MaxMessage = 1 << 20

// decodeMessage reads and checks a message from the broker; anything it cannot use is an error (the
// message is then dead-lettered, not retried).
func decodeMessage(data []byte) (message, error) {
	var m message
	if len(data) > MaxMessage {
		return m, fmt.Errorf("message of %d bytes; at most %d", len(data), MaxMessage)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("decode message: %w", err)
	}
	switch {
	case job.CheckRequestID(m.RequestID) != nil:
		return m, fmt.Errorf("message has an invalid request id %q", m.RequestID)
	case m.CallbackURL == "":
		return m, errors.New("message has no callback_url")
	case m.Attempt < 1 || m.Attempt > 1000:
		return m, fmt.Errorf("message has attempt %d", m.Attempt)
	case m.FirstAttempt.IsZero():
		return m, errors.New("message has no first_attempt_at")
	case len(m.Body) == 0 && m.Owner == "":
		return m, errors.New("message has neither a body nor an owner to read the job with")
	case len(m.Body) > 0 && !json.Valid(m.Body):
		return m, errors.New("message body is not JSON")
	}
	return m, nil
}

// Payload is the body a receiver gets: the final job as GET /jobs/{id} shows it, without the owner (the
// receiver is the owner's endpoint; the token's subject is not its business) and without the delivery
// state (which changes with every attempt; every attempt sends the same bytes).
func Payload(j job.Job) ([]byte, error) {
	return json.Marshal(payload{Job: j})
}

// payload hides the owner and webhook fields of the embedded job: a field of the outer struct with the
// same JSON name wins, and these are always empty.
type payload struct {
	job.Job
	Owner   *struct{} `json:"owner,omitempty"`
	Webhook *struct{} `json:"webhook,omitempty"`
}

// Outbox enqueues webhook deliveries: one durable message per finished job with a callback, on
// <task>.webhooks, which the worker's Deliverer consumes.
type Outbox struct {
	p        *broker.Publisher
	q        Queues
	declared atomic.Bool
	now      func() time.Time
}

// NewOutbox returns the outbox of taskQueue's webhooks, publishing through p (which must be running).
func NewOutbox(p *broker.Publisher, taskQueue string) *Outbox {
	return &Outbox{p: p, q: NewQueues(taskQueue), now: time.Now}
}

// Enqueue publishes the delivery of the final job j (persistent, confirmed). A job without a callback_url
// needs no delivery: Enqueue does nothing. It declares the webhook queues before its first publish (a
// message published to a missing queue would be dropped). An error means the delivery is not enqueued:
// the caller logs it (the job stays final; its webhook state stays pending).
func (o *Outbox) Enqueue(ctx context.Context, j job.Job) error {
	if j.CallbackURL == "" {
		return nil
	}
	if !j.Status.Final() {
		return fmt.Errorf("webhook: job %s is %s, not final: nothing to deliver yet", j.RequestID, j.Status)
	}
	if err := job.CheckRequestID(j.RequestID); err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	if !o.declared.Load() {
		if err := o.p.Declare(ctx, o.q.Declare); err != nil {
			return fmt.Errorf("webhook: declare the webhook queues: %w", err)
		}
		o.declared.Store(true)
	}
	m, err := newMessage(j, o.now())
	if err != nil {
		return err
	}
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("webhook: encode the delivery of job %s: %w", j.RequestID, err)
	}
	for try := 0; ; try++ {
		err = o.p.Publish(ctx, o.q.Main, publishing(m, data))
		// A quorum queue another connection is declaring at this very moment exists before its leader
		// runs, and refuses the message (nack): seen when a worker and the first enqueue declare at once.
		// A nack means the message was not taken, so trying again cannot duplicate it.
		if err == nil || !errors.Is(err, broker.ErrNacked) || try == 3 {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("webhook: enqueue the delivery of job %s: %w", j.RequestID, ctx.Err())
		case <-time.After(time.Duration(try+1) * 100 * time.Millisecond):
		}
	}
	if err != nil {
		return fmt.Errorf("webhook: enqueue the delivery of job %s: %w", j.RequestID, err)
	}
	return nil
}

// newMessage builds the first attempt's message of the final job j.
func newMessage(j job.Job, now time.Time) (message, error) {
	body, err := Payload(j)
	if err != nil {
		return message{}, fmt.Errorf("webhook: encode job %s: %w", j.RequestID, err)
	}
	m := message{RequestID: j.RequestID, Owner: j.Owner, CallbackURL: j.CallbackURL, Attempt: 1, FirstAttempt: now.UTC()}
	if len(body) <= MaxCarriedBody {
		m.Body = body
	}
	return m, nil
}

// publishing wraps an encoded message for the broker.
func publishing(m message, data []byte) amqp.Publishing {
	return amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		Type:         MessageType,
		MessageId:    m.RequestID,
		Timestamp:    time.Now(),
		Body:         data,
	}
}
