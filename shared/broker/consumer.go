package broker

import (
	"context"
	"fmt"
	"log/slog"
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
	deliveries  chan amqp.Delivery
	stopSession context.CancelFunc
}

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
	c := &Consumer{cfg: cfg, log: log, deliveries: make(chan amqp.Delivery)}
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
	if err := ch.Qos(c.cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("set prefetch %d: %w", c.cfg.Prefetch, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ch = ch
	if c.stopped {
		return nil // connected for acks only
	}
	ds, err := ch.Consume(c.cfg.Topology.TaskQueue, c.cfg.Tag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %q: %w", c.cfg.Topology.TaskQueue, err)
	}
	go func() {
		for d := range ds {
			select {
			case c.deliveries <- d:
			case <-ctx.Done():
				return // unacked: the broker requeues it when the channel closes
			}
		}
	}()
	return nil
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
			handle(NewTask(d, c.cfg.Settler))
		case <-ctx.Done():
			c.cancel()
			// Deliveries in flight to us when we cancelled still arrive; hand them over briefly.
			drain := time.NewTimer(200 * time.Millisecond)
			defer drain.Stop()
			for {
				select {
				case d := <-c.deliveries:
					handle(NewTask(d, c.cfg.Settler))
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
	c.mu.Unlock()
	if ch != nil && !ch.IsClosed() {
		if err := ch.Cancel(c.cfg.Tag, false); err != nil {
			c.log.Warn("cancel consumer", "error", err)
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
