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

// Leases of long jobs. RabbitMQ closes a channel that holds a delivery unacknowledged past its
// consumer_timeout (30 min by default, on Amazon MQ too), and every delivery of that channel goes back to the
// queue. A worker that runs a job longer than that therefore does not hold the delivery: it records the job
// as running in the job store, publishes a lease copy of the task to the lease queue (Leaser.Lease), acks
// the original (Task.Release), and renews the lease (a new copy, then the lease's end in the store) every
// quarter lease period while the job runs. The lease queue has no consumers: each copy expires after the
// lease period (the queue's x-message-ttl) and is dead-lettered back into the task queue, where a worker
// takes it as a task (Task.LeaseCopy) and decides from the job store: a finished job or one whose lease is
// still fresh → drop the copy; otherwise the worker that held it was lost → run the job again with the time
// left, or fail it (worker_lost). A worker that cannot renew its lease stops the run before the lease's copy
// comes back (worker/internal/task's lease).

// LeaseHeader marks a lease copy; its value names the worker that published it.
const LeaseHeader = "x-scrape-lease"

// LeaseQueue is the lease queue of the topology's task queue: "<task queue>.lease".
func (t Topology) LeaseQueue() string { return t.TaskQueue + ".lease" }

// LeaseQueueArgs are the arguments the lease queue is declared with: a classic queue whose messages expire
// after period and are dead-lettered, through the default exchange, into the task queue. Every worker must
// use the same period (JOB_LEASE): RabbitMQ refuses a redeclaration with other arguments.
func (t Topology) LeaseQueueArgs(period time.Duration) amqp.Table {
	return amqp.Table{
		amqp.QueueTypeArg:           amqp.QueueTypeClassic,
		"x-message-ttl":             period.Milliseconds(),
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": t.TaskQueue,
	}
}

// LeaserConfig configures a Leaser.
type LeaserConfig struct {
	URL  string
	Name string
	// Topology names the task queue; the lease queue is Topology.LeaseQueue.
	Topology Topology
	// Period is the lease period: how long a copy stays in the lease queue before it comes back.
	Period time.Duration
	// ConnectWait bounds how long a lease waits for a connection (default 5 s); ConfirmTimeout the wait
	// for its confirm (default 5 s).
	ConnectWait, ConfirmTimeout time.Duration
	OnConnect                   func()
	OnDisconnect                func(error)
	Logger                      *slog.Logger
}

// Leaser publishes lease copies of tasks on a session of its own, which declares the lease queue on every
// (re)connect.
type Leaser struct {
	cfg     LeaserConfig
	log     *slog.Logger
	session *Session
}

// NewLeaser returns a leaser; call Run to connect.
func NewLeaser(cfg LeaserConfig) *Leaser {
	if cfg.ConnectWait <= 0 {
		cfg.ConnectWait = 5 * time.Second
	}
	if cfg.ConfirmTimeout <= 0 {
		cfg.ConfirmTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Leaser{cfg: cfg, log: cfg.Logger}
	l.session = NewSession(SessionConfig{URL: cfg.URL, Name: cfg.Name, Setup: l.setup,
		OnConnect: cfg.OnConnect, OnDisconnect: cfg.OnDisconnect, Logger: cfg.Logger})
	return l
}

func (l *Leaser) setup(_ context.Context, _ *amqp.Connection, ch *amqp.Channel) error {
	if l.cfg.Period <= 0 {
		return errors.New("lease queue: no lease period")
	}
	q := l.cfg.Topology.LeaseQueue()
	if _, err := ch.QueueDeclare(q, true, false, false, false, l.cfg.Topology.LeaseQueueArgs(l.cfg.Period)); err != nil {
		return fmt.Errorf("declare queue %q (every worker must have the same JOB_LEASE): %w", q, err)
	}
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("enable publisher confirms: %w", err)
	}
	return nil
}

// Run keeps the leaser connected until ctx ends.
func (l *Leaser) Run(ctx context.Context) error { return l.session.Run(ctx) }

// Connected reports whether the leaser has a usable channel.
func (l *Leaser) Connected() bool { return l.session.Connected() }

// Period is the lease period.
func (l *Leaser) Period() time.Duration { return l.cfg.Period }

// Lease publishes a copy of t to the lease queue, marked with LeaseHeader = by, and returns once the broker
// has confirmed it. The copy has no expiration of its own (the queue's TTL applies; RabbitMQ drops the
// property when it dead-letters a message anyway).
func (l *Leaser) Lease(ctx context.Context, t *Task, by string) error {
	_, ch, err := l.session.Channel(ctx, l.cfg.ConnectWait)
	if err != nil {
		return err
	}
	d := t.d
	headers := amqp.Table{}
	for k, v := range d.Headers {
		headers[k] = v
	}
	headers[LeaseHeader] = by
	msg := amqp.Publishing{Headers: headers, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
		DeliveryMode: amqp.Persistent, CorrelationId: d.CorrelationId, ReplyTo: d.ReplyTo, MessageId: d.MessageId,
		Timestamp: d.Timestamp, Type: d.Type, AppId: d.AppId, Body: d.Body}
	return publishConfirmed(ctx, l.session, ch, l.log, l.cfg.ConfirmTimeout, "", l.cfg.Topology.LeaseQueue(), false, msg)
}

// LeaseCopy reports whether t is a lease copy that came back from the lease queue.
func (t *Task) LeaseCopy() bool {
	_, ok := t.d.Headers[LeaseHeader]
	return ok
}

// Release acks t's delivery now, before its work is done (the work is leased: the job store and the lease
// copies keep it). Settle must not be called afterwards; Reply sends the reply.
func (t *Task) Release() error {
	if err := t.d.Ack(false); err != nil {
		return fmt.Errorf("release task: %w", err)
	}
	return nil
}

// Reply publishes reply to the task's reply address, as Settle does for an acked task (retried until the
// request's deadline), without settling the delivery: for a task that was Released, or that is settled
// otherwise.
func (t *Task) Reply(ctx context.Context, reply *contract.Reply, log *slog.Logger) error {
	if reply == nil || t.d.ReplyTo == "" || t.Request == nil {
		return nil
	}
	if log == nil {
		log = t.s.Logger
	}
	return t.publishReply(ctx, log, Outcome{Reply: reply, Action: Ack})
}
