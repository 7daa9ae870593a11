package broker

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ConsumerConfig configures a Consumer.
type ConsumerConfig struct {
	URL  string
	Name string
	// Topology is declared on every (re)connect; the consumer reads Topology.TaskQueue.
	Topology Topology
	// Prefetch is the most unacknowledged deliveries the broker hands this consumer (its free slots).
	Prefetch int
	// Tag identifies the consumer to the broker (default Name).
	Tag string
	// Settler settles the tasks handed to Run's handler: where replies and dead letters go.
	Settler      Settler
	OnConnect    func()
	OnDisconnect func(error)
	Logger       *slog.Logger
}

// Consumer consumes the task queue with manual acknowledgements, resuming after reconnects.
//
// Deliveries reach the handler given to Run as parsed tasks, one at a time, in the consuming goroutine; a
// handler that needs concurrency starts its own goroutines (prefetch bounds how many deliveries can be
// outstanding). A task is settled once, by Task.Settle, on the channel it came from; when that channel is
// lost the broker requeues whatever was not acked, so an unfinished task is never lost.
type Consumer struct {
	cfg     ConsumerConfig
	log     *slog.Logger
	session *Session

	mu          sync.Mutex
	stopped     bool
	ch          *amqp.Channel
	chCtx       context.Context // the session's context of ch
	deliveries  chan amqp.Delivery
	stopSession context.CancelFunc

	// Live prefetch (SetPrefetch). The broker fixes a subscription's prefetch when it subscribes, so the
	// total is made of subscriptions on one channel: a rise adds one for the difference, a cut cancels
	// live ones — but only a full one (as many deliveries held as its prefetch: the broker can send it
	// nothing, so no delivery is in flight to it when it is cancelled). Cancelling a subscription with
	// deliveries on their way has the broker hand them back to the queue (a redelivery, counted against the
	// queue's delivery limit; amqp091-go drops those that arrive after the cancel), which under a live
	// admission controller bounced tasks until they were dead-lettered (delivery_limit).
	want int                      // the total the handler wants outstanding
	gen  int                      // subscriptions made on this channel
	subs map[string]*subscription // by tag, until all their deliveries are settled
}

// maxLiveSubscriptions is how many live subscriptions the consumer keeps before it merges full ones away
// (each rise adds one).
const maxLiveSubscriptions = 4

// subscription is the prefetch accounting of one subscription: the broker keeps its unacknowledged
// deliveries at or below prefetch; received and settled count what reached the consumer and what was (or is
// being) settled.
type subscription struct {
	prefetch, received, settled int
	seq                         int // the consumer's gen when it subscribed: older ones are lower
	cancelled                   bool
	drained                     bool // its delivery channel closed: received is final
}

// outstanding is how many of its deliveries are unsettled. Only full subscriptions are cancelled, so a
// cancelled one has nothing on its way.
func (s *subscription) outstanding() int { return s.received - s.settled }

// full reports whether the subscription holds as many deliveries as its prefetch. Settling counts before
// the ack is sent, under the consumer's lock, so while the lock is held a full subscription can be sent
// nothing, and a cancel sent under the lock reaches the broker before any ack that could free it a slot.
func (s *subscription) full() bool { return !s.cancelled && s.outstanding() >= s.prefetch }

// NewConsumer returns a consumer; call Run to start consuming.
func NewConsumer(cfg ConsumerConfig) *Consumer {
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 1
	}
	if cfg.Tag == "" {
		cfg.Tag = cfg.Name
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Settler.Logger == nil {
		cfg.Settler.Logger = log
	}
	c := &Consumer{cfg: cfg, log: log, deliveries: make(chan amqp.Delivery), want: cfg.Prefetch, subs: map[string]*subscription{}}
	c.session = NewSession(SessionConfig{
		URL:          cfg.URL,
		Name:         cfg.Name,
		Setup:        c.setup,
		OnConnect:    cfg.OnConnect,
		OnDisconnect: cfg.OnDisconnect,
		Logger:       log,
	})
	return c
}

func (c *Consumer) setup(ctx context.Context, _ *amqp.Connection, ch *amqp.Channel) error {
	if err := c.cfg.Topology.Declare(ch); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ch, c.chCtx = ch, ctx
	c.gen = 0
	clear(c.subs) // the old channel's deliveries went back to the queue with it
	if c.stopped {
		return nil // connected for acks only
	}
	return c.subscribeLocked(c.want)
}

// subscribeLocked subscribes to the task queue with the given prefetch under a new tag, on c.ch.
func (c *Consumer) subscribeLocked(prefetch int) error {
	ch, ctx := c.ch, c.chCtx
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return fmt.Errorf("set prefetch %d: %w", prefetch, err)
	}
	c.gen++
	tag := c.cfg.Tag
	if c.gen > 1 {
		tag = fmt.Sprintf("%s#%d", c.cfg.Tag, c.gen)
	}
	ds, err := ch.Consume(c.cfg.Topology.TaskQueue, tag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %q: %w", c.cfg.Topology.TaskQueue, err)
	}
	sub := &subscription{prefetch: prefetch, seq: c.gen}
	c.subs[tag] = sub
	go func() {
		defer func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			sub.drained = true
			c.forgetLocked(tag, sub)
			if err := c.reconcileLocked(true); err != nil {
				c.log.Warn("re-subscribe after a subscription ended", "error", err)
			}
		}()
		for d := range ds {
			c.mu.Lock()
			sub.received++
			if sub.full() {
				// A full subscription can be cancelled safely: a cut waiting for one, or a merge.
				if err := c.reconcileLocked(true); err != nil {
					c.log.Warn("adjust the prefetch", "error", err)
				}
			}
			c.mu.Unlock()
			select {
			case c.deliveries <- d:
			case <-ctx.Done():
				return // unacked: the broker requeues it when the channel closes
			}
		}
	}()
	return nil
}

// forgetLocked drops a subscription once it can hold nothing more.
func (c *Consumer) forgetLocked(tag string, sub *subscription) {
	if sub.drained && sub.received == sub.settled && c.subs[tag] == sub {
		delete(c.subs, tag)
	}
}

// SetPrefetch changes how many unsettled deliveries the consumer may hold in all, while it runs (an
// admission controller's capacity). A rise subscribes again for the difference at once; a cut cancels
// subscriptions as they fill up (see Consumer), so it takes hold when there is work to take, and lowering
// never takes deliveries back: they are settled as they end.
func (c *Consumer) SetPrefetch(n int) error {
	if n < 1 {
		n = 1
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.want = n
	return c.reconcileLocked(false)
}

// Prefetch reports the total SetPrefetch asked for, and how many deliveries are held unsettled now.
func (c *Consumer) Prefetch() (want, held int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, sub := range c.subs {
		held += sub.outstanding()
	}
	return c.want, held
}

// reachLocked is how many deliveries may be outstanding with the subscriptions as they are (the live
// ones' prefetch and what cancelled ones still hold), and what the live ones alone allow.
func (c *Consumer) reachLocked() (reach, live, liveSubs int) {
	for _, sub := range c.subs {
		if sub.cancelled {
			reach += sub.outstanding()
		} else {
			reach += sub.prefetch
			live += sub.prefetch
			liveSubs++
		}
	}
	return reach, live, liveSubs
}

// reconcileLocked brings the subscriptions' reach to the total asked for: it cancels full live
// subscriptions while the live ones allow more than it (or number more than maxLiveSubscriptions), and
// subscribes for the difference when the reach is below it. lazy (after a settle) subscribes only for a
// sizeable gain, so steady traffic does not churn subscriptions.
func (c *Consumer) reconcileLocked(lazy bool) error {
	if c.stopped || c.ch == nil || c.ch.IsClosed() {
		return nil
	}
	_, live, liveSubs := c.reachLocked()
	// The smallest full subscriptions go first, and of equal ones the oldest (a fixed order, not the map's):
	// a cut then cancels no more prefetch than it must. In the map's order, cutting 2 + 3 to 3 could cancel
	// the 3 and leave the 2 live: once the first 2 deliveries settled, the 2 refilled while the cancelled
	// 3's deliveries still counted, and 5 were held.
	var full []string
	for tag, sub := range c.subs {
		if sub.full() {
			full = append(full, tag)
		}
	}
	slices.SortFunc(full, func(a, b string) int {
		return cmp.Or(cmp.Compare(c.subs[a].prefetch, c.subs[b].prefetch), cmp.Compare(c.subs[a].seq, c.subs[b].seq))
	})
	for _, tag := range full {
		if live <= c.want && liveSubs <= maxLiveSubscriptions {
			break
		}
		sub := c.subs[tag]
		if err := c.ch.Cancel(tag, false); err != nil {
			return fmt.Errorf("cancel subscription %q: %w", tag, err)
		}
		sub.cancelled = true // what it frees as its deliveries settle is not taken again
		live -= sub.prefetch
		liveSubs--
	}
	reach, _, liveSubs := c.reachLocked()
	gap := c.want - reach
	if gap < 1 || (lazy && liveSubs > 0 && gap < max(1, c.want/8)) {
		return nil
	}
	return c.subscribeLocked(gap)
}

// handOut wraps d as a task that reports its settling to the prefetch accounting.
func (c *Consumer) handOut(d amqp.Delivery) *Task {
	t := NewTask(d, c.cfg.Settler)
	tag := d.ConsumerTag
	c.mu.Lock()
	sub := c.subs[tag]
	c.mu.Unlock()
	if sub == nil {
		return t // a channel that is gone: nothing to account
	}
	t.settling = func() {
		c.mu.Lock()
		sub.settled++
		c.mu.Unlock()
	}
	t.settled = func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.forgetLocked(tag, sub)
		if sub.cancelled {
			if err := c.reconcileLocked(true); err != nil {
				c.log.Warn("re-subscribe after settling", "error", err)
			}
		}
	}
	return t
}

// Run connects and hands every delivery, as a Task, to handle until ctx ends. When ctx ends it cancels the
// consumer at the broker, hands over the deliveries already received (the handler should settle them with
// Requeue when it is stopping), and returns; the channel stays open so tasks in flight can still be
// settled until Close.
func (c *Consumer) Run(ctx context.Context, handle func(*Task)) error {
	sessionCtx, stopSession := context.WithCancel(context.WithoutCancel(ctx))
	c.mu.Lock()
	c.stopSession = stopSession
	c.mu.Unlock()
	go func() { _ = c.session.Run(sessionCtx) }()

	for {
		select {
		case d := <-c.deliveries:
			handle(c.handOut(d))
		case <-ctx.Done():
			c.cancel()
			// Deliveries in flight to us when we cancelled still arrive; hand them over briefly.
			drain := time.NewTimer(200 * time.Millisecond)
			defer drain.Stop()
			for {
				select {
				case d := <-c.deliveries:
					handle(c.handOut(d))
				case <-drain.C:
					return ctx.Err()
				}
			}
		}
	}
}

// cancel stops consumption at the broker, leaving the channel open.
func (c *Consumer) cancel() {
	c.mu.Lock()
	c.stopped = true
	ch := c.ch
	var tags []string
	for tag, sub := range c.subs {
		if !sub.cancelled {
			sub.cancelled = true
			tags = append(tags, tag)
		}
	}
	c.mu.Unlock()
	for _, tag := range tags {
		if ch != nil && !ch.IsClosed() {
			if err := ch.Cancel(tag, false); err != nil {
				c.log.Warn("cancel consumer", "error", err)
			}
		}
	}
}

// Connected reports whether the consumer has a usable channel.
func (c *Consumer) Connected() bool { return c.session.Connected() }

// Problem says why it is not connected (Session.Problem), or nil.
func (c *Consumer) Problem() error { return c.session.Problem() }

// Shutdown closes the channel and the connection; the broker requeues every delivery not yet
// acknowledged. Call it after Run has returned and the tasks in flight are settled. It waits for the
// connection to close until ctx ends.
func (c *Consumer) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	stop := c.stopSession
	c.mu.Unlock()
	if stop == nil {
		return nil // never ran
	}
	stop()
	select {
	case <-c.session.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close the consumer's connection: %w", ctx.Err())
	}
}
