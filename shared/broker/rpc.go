package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/contract"
)

// RPCConfig configures an RPCClient.
type RPCConfig struct {
	URL  string
	Name string
	// Topology is declared on every (re)connect, so tasks published before any worker started wait in the
	// queue instead of being unroutable.
	Topology Topology
	// Window bounds publishes awaiting their confirm (default 128).
	Window int
	// ConnectWait bounds how long a call waits for a connection before failing with ErrUnavailable
	// (default 3 s).
	ConnectWait time.Duration
	// ConfirmTimeout bounds the wait for a publish confirm; a connection that does not confirm in time is
	// considered dead and reset (default 5 s).
	ConfirmTimeout time.Duration
	// OnDrop, if set, is called for every reply that matched no waiting call ("unknown" or "late").
	OnDrop func(reason string)
	// OnConnect and OnDisconnect are passed to the session.
	OnConnect    func()
	OnDisconnect func(error)
	Logger       *slog.Logger
}

// RPCClient sends requests to the task queue and waits for replies on direct reply-to. It is safe for
// concurrent use; all calls share one connection and one channel.
type RPCClient struct {
	cfg     RPCConfig
	log     *slog.Logger
	session *Session
	window  chan struct{}

	mu      sync.Mutex
	pending map[string]chan result // by correlation id
	late    map[string]time.Time   // correlation ids whose caller gave up, to tell late from unknown replies

	dropped  atomic.Int64
	lastUsed atomic.Int64 // unix nanos of the last successful call or check
}

type result struct {
	d   amqp.Delivery
	err error
}

// NewRPCClient returns a client; call Run (usually in its own goroutine) to connect.
func NewRPCClient(cfg RPCConfig) *RPCClient {
	if cfg.Window <= 0 {
		cfg.Window = 128
	}
	if cfg.ConnectWait <= 0 {
		cfg.ConnectWait = 3 * time.Second
	}
	if cfg.ConfirmTimeout <= 0 {
		cfg.ConfirmTimeout = 5 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &RPCClient{
		cfg:     cfg,
		log:     log,
		window:  make(chan struct{}, cfg.Window),
		pending: make(map[string]chan result),
		late:    make(map[string]time.Time),
	}
	c.session = NewSession(SessionConfig{
		URL:          cfg.URL,
		Name:         cfg.Name,
		Setup:        c.setup,
		OnConnect:    cfg.OnConnect,
		OnDisconnect: c.disconnected,
		Logger:       log,
	})
	return c
}

// Run keeps the client connected until ctx ends.
func (c *RPCClient) Run(ctx context.Context) error { return c.session.Run(ctx) }

// Connected reports whether the client has a usable channel.
func (c *RPCClient) Connected() bool { return c.session.Connected() }

// Problem says why the client is not connected (Session.Problem), or nil.
func (c *RPCClient) Problem() error { return c.session.Problem() }

// Blocked reports whether the broker blocks the client's publishes for now (a memory or disk alarm); calls
// then fail at once with ErrBlocked.
func (c *RPCClient) Blocked() bool { return c.session.Blocked() }

// Dropped is the number of replies dropped so far because no call was waiting for them.
func (c *RPCClient) Dropped() int64 { return c.dropped.Load() }

func (c *RPCClient) setup(_ context.Context, _ *amqp.Connection, ch *amqp.Channel) error {
	if err := c.cfg.Topology.Declare(ch); err != nil {
		return err
	}
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("enable publisher confirms: %w", err)
	}
	// Direct reply-to must be consumed, in no-ack mode, on the channel that publishes.
	replies, err := ch.Consume(contract.DirectReplyTo, "", true, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", contract.DirectReplyTo, err)
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, 16))
	go func() {
		for d := range replies {
			c.deliver(d.CorrelationId, result{d: d})
		}
	}()
	go func() {
		for r := range returns {
			c.deliver(r.CorrelationId, result{err: fmt.Errorf("%w: %s (%d) for routing key %q", ErrUnroutable, r.ReplyText, r.ReplyCode, r.RoutingKey)})
		}
	}()
	return nil
}

// disconnected fails every waiting call: their replies would go to a channel that no longer exists.
func (c *RPCClient) disconnected(err error) {
	c.mu.Lock()
	waiting := c.pending
	c.pending = make(map[string]chan result)
	c.mu.Unlock()
	for _, w := range waiting {
		w <- result{err: fmt.Errorf("%w: %w", ErrConnectionLost, err)}
	}
	if c.cfg.OnDisconnect != nil {
		c.cfg.OnDisconnect(err)
	}
}

// deliver hands r to the call waiting on id, or drops it.
func (c *RPCClient) deliver(id string, r result) {
	c.mu.Lock()
	w, ok := c.pending[id]
	if ok {
		delete(c.pending, id)
	}
	_, late := c.late[id]
	if late {
		delete(c.late, id)
	}
	c.mu.Unlock()
	if ok {
		w <- r // buffered, never blocks
		return
	}
	if r.err != nil {
		return // a return for a call that already gave up
	}
	reason := "unknown"
	if late {
		reason = "late"
	}
	c.dropped.Add(1)
	if late {
		// Expected: the caller stopped waiting (its window ended; a job's result is kept by the worker) and
		// said so already. A reply nobody ever waited for is the surprise.
		c.log.Debug("dropped reply", "request_id", id, "reason", reason)
	} else {
		c.log.Warn("dropped reply", "request_id", id, "reason", reason)
	}
	if c.cfg.OnDrop != nil {
		c.cfg.OnDrop(reason)
	}
}

// Call publishes req to the task queue (mapped by req.Publishing) and waits for the reply with its
// correlation id. Call never waits past ctx's deadline; it returns ErrUnavailable, ErrNacked, ErrUnroutable
// or ErrConnectionLost (all transient) when the broker could not take the message, contract.ErrExpired when
// req's deadline has already passed, ErrMalformedReply for a reply that does not parse, and ctx's error when
// the reply did not come in time.
func (c *RPCClient) Call(ctx context.Context, req *contract.Request) (*contract.Reply, error) {
	msg, err := req.Publishing(time.Now())
	if err != nil {
		return nil, err
	}
	d, err := c.call(ctx, msg)
	if err != nil {
		return nil, err
	}
	rep, err := contract.ParseReply(d)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedReply, err)
	}
	return rep, nil
}

// call publishes msg and waits for the delivery that answers it.
func (c *RPCClient) call(ctx context.Context, msg amqp.Publishing) (amqp.Delivery, error) {
	if msg.CorrelationId == "" {
		return amqp.Delivery{}, fmt.Errorf("rpc call needs a correlation id")
	}
	_, ch, err := c.session.Channel(ctx, c.cfg.ConnectWait)
	if err != nil {
		return amqp.Delivery{}, err
	}
	if c.session.Blocked() {
		// A resource alarm: fail at once rather than have every caller wait for a confirm that cannot come.
		return amqp.Delivery{}, ErrBlocked
	}

	select {
	case c.window <- struct{}{}:
	case <-ctx.Done():
		return amqp.Delivery{}, ctx.Err()
	}
	wait := make(chan result, 1)
	c.mu.Lock()
	c.pending[msg.CorrelationId] = wait
	c.mu.Unlock()

	err = c.publish(ctx, ch, msg)
	<-c.window
	if err != nil {
		c.forget(msg.CorrelationId, false)
		return amqp.Delivery{}, err
	}
	ReportPublished(ctx)

	select {
	case r := <-wait:
		if r.err == nil {
			c.lastUsed.Store(time.Now().UnixNano())
		}
		return r.d, r.err
	case <-ctx.Done():
		c.forget(msg.CorrelationId, true)
		// A reply may have raced the deadline; prefer it.
		select {
		case r := <-wait:
			return r.d, r.err
		default:
		}
		return amqp.Delivery{}, ctx.Err()
	}
}

type publishedKey struct{}

// WithPublished returns ctx carrying f, which RPCClient.Call runs once the broker has confirmed the
// request's message (before waiting for the reply): a caller that stops waiting early (the gateway's sync
// window of a job) learns that the task is on its way.
func WithPublished(ctx context.Context, f func()) context.Context {
	return context.WithValue(ctx, publishedKey{}, f)
}

// ReportPublished runs the hook WithPublished put in ctx, if any. Call runs it; a stand-in for Call in a
// unit test may too.
func ReportPublished(ctx context.Context) {
	if f, ok := ctx.Value(publishedKey{}).(func()); ok {
		f()
	}
}

func (c *RPCClient) publish(ctx context.Context, ch *amqp.Channel, msg amqp.Publishing) error {
	return publishConfirmed(ctx, c.session, ch, c.log, c.cfg.ConfirmTimeout, "", c.cfg.Topology.TaskQueue, true, msg)
}

// CancelNoticeType is the AMQP type of a cancel notice; its correlation id is the job's request id.
const CancelNoticeType = "scrape.cancel.v1"

// NotifyCancel tells every worker, through the topology's cancel exchange, to stop the job with the given
// request id if it runs it. It returns once the broker has confirmed the notice. A worker that misses it
// (disconnected at that moment) still learns of the cancel from the job store (job.Store.CancelRequested).
func (c *RPCClient) NotifyCancel(ctx context.Context, requestID string) error {
	if requestID == "" {
		return errors.New("cancel notice needs a request id")
	}
	_, ch, err := c.session.Channel(ctx, c.cfg.ConnectWait)
	if err != nil {
		return err
	}
	msg := amqp.Publishing{Type: CancelNoticeType, CorrelationId: requestID, MessageId: requestID,
		Timestamp: time.Now().UTC(), DeliveryMode: amqp.Transient, Expiration: "60000"}
	return publishConfirmed(ctx, c.session, ch, c.log, c.cfg.ConfirmTimeout, c.cfg.Topology.CancelExchange, "", false, msg)
}

// forget removes the waiter for id; when late is set, a reply that arrives afterwards is counted as late.
func (c *RPCClient) forget(id string, late bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, id)
	if !late {
		return
	}
	now := time.Now()
	c.late[id] = now
	// Keep the late set small: entries older than a minute are forgotten (their replies count as unknown).
	if len(c.late) > 1024 {
		for k, t := range c.late {
			if now.Sub(t) > time.Minute {
				delete(c.late, k)
			}
		}
	}
}

// QueueState is what the broker reports of a queue.
type QueueState struct {
	Messages  int // ready messages
	Consumers int
}

// Inspect asks the broker for the state of queue without declaring it. It opens a short-lived channel so a
// missing queue (which closes the channel) cannot disturb calls in flight.
func (c *RPCClient) Inspect(ctx context.Context, queue string) (QueueState, error) {
	conn, _, err := c.session.Channel(ctx, c.cfg.ConnectWait)
	if err != nil {
		return QueueState{}, err
	}
	type answer struct {
		q   amqp.Queue
		err error
	}
	out := make(chan answer, 1)
	go func() {
		ch, err := conn.Channel()
		if err != nil {
			out <- answer{err: err}
			return
		}
		defer ch.Close()
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		out <- answer{q, err}
	}()
	select {
	case a := <-out:
		if a.err != nil {
			return QueueState{}, fmt.Errorf("inspect queue %q: %w", queue, a.err)
		}
		return QueueState{Messages: a.q.Messages, Consumers: a.q.Consumers}, nil
	case <-ctx.Done():
		return QueueState{}, fmt.Errorf("inspect queue %q: %w", queue, ctx.Err())
	}
}

// CheckIdle verifies the connection with a broker round trip when it has been idle for longer than maxIdle,
// and redials at once when the check fails. A Lambda execution environment is frozen between invocations:
// heartbeats stop, the broker may drop the connection, and the client cannot notice until it uses it. Call
// this at the start of an invocation so a dead connection costs a quick redial instead of a failed call.
func (c *RPCClient) CheckIdle(ctx context.Context, maxIdle, timeout time.Duration) {
	last := c.lastUsed.Load()
	if last != 0 && time.Since(time.Unix(0, last)) < maxIdle {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, _, err := c.session.Channel(cctx, timeout)
	if err != nil {
		return // not connected: Call waits for the redial
	}
	ok := make(chan bool, 1)
	go func() {
		ch, err := conn.Channel() // a full round trip to the broker
		if err == nil {
			_ = ch.Close()
		}
		ok <- err == nil
	}()
	select {
	case good := <-ok:
		if good {
			c.lastUsed.Store(time.Now().UnixNano())
			return
		}
	case <-cctx.Done():
	}
	c.log.Warn("idle broker connection did not answer; redialling", "idle_for", time.Since(time.Unix(0, last)).Round(time.Second))
	c.session.Reset()
}
