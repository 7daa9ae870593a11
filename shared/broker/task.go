package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/contract"
)

// Action is how a task's delivery is settled.
type Action int

// The settle actions.
const (
	// Ack: the task is done (its reply, if any, has been published or given up).
	Ack Action = iota
	// Requeue: hand the task back to the queue for another worker (a shutdown cut it short). Requeues are
	// bounded by the queue's delivery limit.
	Requeue
	// DeadLetter: move the task to the dead-letter queue with Outcome.Reason (invalid or expired).
	DeadLetter
)

func (a Action) String() string {
	switch a {
	case Ack:
		return "ack"
	case Requeue:
		return "requeue"
	case DeadLetter:
		return "dead-letter"
	}
	return "unknown"
}

// Outcome is what became of a task: the reply to send (nil for none) and how to settle the delivery.
type Outcome struct {
	Reply  *contract.Reply
	Action Action
	// Reason says why a task is dead-lettered or requeued; dead letters carry it in x-scrape-rejected-reason.
	Reason string
	// Logger, if set, logs the settling with the task's own attributes (request_id, script); the
	// Settler's logger otherwise.
	Logger *slog.Logger
}

// ReplyPublisher publishes a message to a queue or a reply address and waits for the broker's confirm.
// *Publisher implements it.
type ReplyPublisher interface {
	Publish(ctx context.Context, routingKey string, msg amqp.Publishing) error
}

var _ ReplyPublisher = (*Publisher)(nil)

// Settler is what settles tasks: where replies and dead letters go, and who settles them.
type Settler struct {
	// Publisher publishes replies and dead letters.
	Publisher ReplyPublisher
	// DeadLetterQueue, when set, receives dead-lettered tasks with the reason in their headers, published
	// through Publisher; without it they are rejected and the broker dead-letters them without one.
	DeadLetterQueue string
	// ID names the settling process in dead-letter headers (x-scrape-rejected-by).
	ID string
	// OnReplyFailure, if set, is called when the reply to a task that is acked cannot be published (before
	// the delivery is settled). Courtesy replies to invalid tasks are not counted.
	OnReplyFailure func(err error)
	Logger         *slog.Logger
	Now            func() time.Time
}

// Task is one delivery of the task queue, parsed: either a valid Request or, with Invalid set, a message
// that is not one. It is settled exactly once, by Settle.
type Task struct {
	// Request is the parsed request; with Invalid set it may be nil or partial.
	Request *contract.Request
	// Invalid is why the message is not a valid request (nil when it is).
	Invalid error
	// Redelivered says the broker delivered the task before (a worker died or requeued it).
	Redelivered bool
	// CorrelationID and MessageID are the message's AMQP properties (for replies to invalid tasks, and logs).
	CorrelationID, MessageID string

	d amqp.Delivery
	s Settler
	// settling and settled, when set (by the Consumer), are told once, right before the delivery is
	// settled at the broker and right after.
	settling, settled func()
}

// NewTask parses d into a task settled through s. Consumer does this for every delivery; tests of task
// handlers use it with a delivery of their own.
func NewTask(d amqp.Delivery, s Settler) *Task {
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	req, err := contract.ParseRequest(d)
	return &Task{Request: req, Invalid: err, Redelivered: d.Redelivered, CorrelationID: d.CorrelationId,
		MessageID: d.MessageId, d: d, s: s}
}

// CanReply reports whether the task says where to send a reply.
func (t *Task) CanReply() bool { return t.d.ReplyTo != "" && t.d.CorrelationId != "" }

// Reply publishing: the first wait between attempts, the longest wait, and how long one attempt may take;
// deadLetterPublishLimit bounds a dead letter's publish and an invalid task's reply.
const (
	replyRetryFirst        = 50 * time.Millisecond
	replyRetryMax          = time.Second
	replyAttemptLimit      = 5 * time.Second
	deadLetterPublishLimit = 5 * time.Second
)

// Settle publishes o.Reply to the task's reply address (if both exist), then settles the delivery as
// o.Action says. It returns the reply's failure and the settling's, if any (joined); either is also logged.
// A failed ack or nack needs no action from the caller: the broker redelivers what was not acked when the
// channel closes.
//
// A reply to a task that is acked is retried until the request's deadline: a reply that cannot go out right
// now almost always means the broker refuses publishes for a while (a memory or disk alarm) or the publish
// connection is being redialled; both pass. Requeueing the task instead would run the script again and
// count a delivery against the queue's limit each time. A reply the broker cannot route (the caller's
// direct reply-to channel is gone) or a closed publisher ends the retries at once. ctx ends the waits
// between attempts (a shutdown); an attempt in flight is bounded on its own.
func (t *Task) Settle(ctx context.Context, o Outcome) error {
	log := t.s.Logger
	if o.Logger != nil {
		log = o.Logger
	}
	var replyErr error
	if o.Reply != nil && t.d.ReplyTo != "" {
		replyErr = t.publishReply(ctx, log, o)
		if replyErr != nil && o.Action == Ack && t.s.OnReplyFailure != nil {
			t.s.OnReplyFailure(replyErr)
		}
	}
	var settleErr error
	if t.settling != nil {
		t.settling()
		t.settling = nil
	}
	switch o.Action {
	case Requeue:
		log.Info("requeueing task", "reason", o.Reason, "correlation_id", t.d.CorrelationId)
		if settleErr = t.d.Nack(false, true); settleErr != nil {
			log.Warn("nack failed; the broker requeues the task when the channel closes", "error", settleErr)
		}
	case DeadLetter:
		settleErr = t.deadLetter(ctx, log, o.Reason)
	default:
		if settleErr = t.d.Ack(false); settleErr != nil {
			// The channel is gone: the broker requeues the task and another worker will run it again.
			log.Warn("ack failed; the task will be redelivered", "error", settleErr, "correlation_id", t.d.CorrelationId)
		}
	}
	if settleErr != nil {
		settleErr = fmt.Errorf("settle task (%s): %w", o.Action, settleErr)
	}
	if t.settled != nil {
		t.settled()
		t.settled = nil
	}
	return errors.Join(replyErr, settleErr)
}

func (t *Task) publishReply(ctx context.Context, log *slog.Logger, o Outcome) error {
	msg, err := o.Reply.Publishing(t.s.Now())
	if err != nil {
		return fmt.Errorf("encode reply: %w", err)
	}
	if o.Action != Ack || t.Request == nil {
		// A courtesy reply (to an invalid task): one bounded attempt.
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deadLetterPublishLimit)
		defer cancel()
		return t.s.Publisher.Publish(pctx, t.d.ReplyTo, msg)
	}
	deadline := t.Request.Deadline
	wait := replyRetryFirst
	for attempt := 1; ; attempt++ {
		left := deadline.Sub(t.s.Now())
		// Each attempt gets its own bound (the first even past the deadline: a reply that is only a little
		// late may still be read).
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(min(replyAttemptLimit, left), replyRetryFirst))
		err := t.s.Publisher.Publish(actx, t.d.ReplyTo, msg)
		cancel()
		if err == nil {
			if attempt > 1 {
				log.Info("reply published after retrying", "attempts", attempt)
			}
			return nil
		}
		if errors.Is(err, ErrUnroutable) || errors.Is(err, ErrClosed) {
			// The caller's reply address is gone (its channel closed: a broker restart, a gateway that
			// stopped), or the publisher is closing: no later attempt can deliver this reply.
			return fmt.Errorf("after %d attempts: %w", attempt, err)
		}
		left = deadline.Sub(t.s.Now())
		if left <= 0 {
			return fmt.Errorf("after %d attempts: %w", attempt, err)
		}
		if attempt == 1 {
			log.Warn("publish reply failed; retrying until the caller's deadline", "error", err, "deadline_in_ms", left.Milliseconds())
		}
		timer := time.NewTimer(min(wait, left))
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("after %d attempts, stopped: %w (last error: %w)", attempt, ctx.Err(), err)
		}
		wait = min(2*wait, replyRetryMax)
	}
}

// deadLetter moves the delivery to the dead-letter queue with the reason in its headers, then acks it.
// Without a dead-letter queue, or when that publish fails, it rejects the delivery and the broker
// dead-letters it (its x-death header then says "rejected", without the reason). A crash between the
// publish and the ack leaves a second copy, never none.
func (t *Task) deadLetter(ctx context.Context, log *slog.Logger, reason string) error {
	d := t.d
	if t.s.DeadLetterQueue != "" && t.s.Publisher != nil {
		headers := amqp.Table{}
		for k, v := range d.Headers {
			headers[k] = v
		}
		if len(reason) > 1024 {
			reason = reason[:1024] + "…"
		}
		headers["x-scrape-rejected-reason"] = reason
		headers["x-scrape-rejected-by"] = t.s.ID
		headers["x-scrape-rejected-at"] = t.s.Now().UTC().Format(time.RFC3339Nano)
		headers["x-scrape-source-queue"] = d.RoutingKey
		msg := amqp.Publishing{Headers: headers, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
			DeliveryMode: amqp.Persistent, CorrelationId: d.CorrelationId, ReplyTo: d.ReplyTo, MessageId: d.MessageId,
			Timestamp: d.Timestamp, Type: d.Type, AppId: d.AppId, Body: d.Body} // no expiration: dead letters are kept
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deadLetterPublishLimit)
		err := t.s.Publisher.Publish(pctx, t.s.DeadLetterQueue, msg)
		cancel()
		if err == nil {
			if err := d.Ack(false); err != nil {
				log.Warn("ack of a dead-lettered task failed; it will be dead-lettered again", "error", err)
				return err
			}
			return nil
		}
		log.Warn("could not publish to the dead-letter queue; rejecting the task instead", "error", err)
	}
	return d.Reject(false)
}
