package broker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	URL  string
	Name string
	// Window bounds publishes awaiting their confirm (default 128).
	Window int
	// ConnectWait bounds how long a publish waits for a connection (default 5 s).
	ConnectWait time.Duration
	// ConfirmTimeout bounds the wait for a confirm before the connection is reset (default 5 s).
	ConfirmTimeout time.Duration
	OnConnect      func()
	OnDisconnect   func(error)
	Logger         *slog.Logger
}

// Publisher publishes confirmed messages on a session of its own. It is safe for concurrent use: every
// publish waits only for its own confirm, and at most Window wait at once.
type Publisher struct {
	cfg     PublisherConfig
	log     *slog.Logger
	session *Session
	window  chan struct{}
}

// NewPublisher returns a publisher; call Run to connect.
func NewPublisher(cfg PublisherConfig) *Publisher {
	if cfg.Window <= 0 {
		cfg.Window = 128
	}
	if cfg.ConnectWait <= 0 {
		cfg.ConnectWait = 5 * time.Second
	}
	if cfg.ConfirmTimeout <= 0 {
		cfg.ConfirmTimeout = 5 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Publisher{cfg: cfg, log: log, window: make(chan struct{}, cfg.Window)}
	p.session = NewSession(SessionConfig{
		URL:  cfg.URL,
		Name: cfg.Name,
		Setup: func(_ context.Context, _ *amqp.Connection, ch *amqp.Channel) error {
			if err := ch.Confirm(false); err != nil {
				return fmt.Errorf("enable publisher confirms: %w", err)
			}
			return nil
		},
		OnConnect:    cfg.OnConnect,
		OnDisconnect: cfg.OnDisconnect,
		Logger:       log,
	})
	return p
}

// Run keeps the publisher connected until ctx ends.
func (p *Publisher) Run(ctx context.Context) error { return p.session.Run(ctx) }

// Connected reports whether the publisher has a usable channel.
func (p *Publisher) Connected() bool { return p.session.Connected() }

// Problem says why it is not connected (Session.Problem), or nil.
func (p *Publisher) Problem() error { return p.session.Problem() }

// Publish sends msg to the default exchange with the given routing key (a queue name, or a direct reply-to
// address) and returns once the broker has confirmed it.
func (p *Publisher) Publish(ctx context.Context, routingKey string, msg amqp.Publishing) error {
	_, ch, err := p.session.Channel(ctx, p.cfg.ConnectWait)
	if err != nil {
		return err
	}
	select {
	case p.window <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-p.window }()
	return publishConfirmed(ctx, p.session, ch, p.log, p.cfg.ConfirmTimeout, "", routingKey, false, msg)
}

// Declare runs declare on the publisher's channel, waiting for one as Publish does: for a user that
// publishes to queues of its own (shared/webhook's outbox) and must declare them first, since a message
// published to a missing queue through the default exchange is dropped. Declarations must be idempotent;
// one the broker refuses (other arguments) closes the channel, and the session redials.
func (p *Publisher) Declare(ctx context.Context, declare func(ch *amqp.Channel) error) error {
	_, ch, err := p.session.Channel(ctx, p.cfg.ConnectWait)
	if err != nil {
		return err
	}
	return declare(ch)
}

// publishConfirmed publishes msg on ch and waits for its confirm. It resets the session when no confirm
// arrives within confirmTimeout: a connection that stopped confirming is as good as dead.
func publishConfirmed(ctx context.Context, s *Session, ch *amqp.Channel, log *slog.Logger, confirmTimeout time.Duration,
	exchange, routingKey string, mandatory bool, msg amqp.Publishing) error {
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, routingKey, mandatory, false, msg)
	if err != nil {
		if errorsIsClosed(err) {
			return fmt.Errorf("%w: %w", ErrConnectionLost, err)
		}
		return fmt.Errorf("%w: publish: %w", ErrUnavailable, err)
	}
	cctx, cancel := context.WithTimeout(ctx, confirmTimeout)
	defer cancel()
	ok, err := waitConfirm(cctx, s, dc)
	switch {
	case err != nil && ctx.Err() != nil:
		return ctx.Err()
	case err != nil && s.Blocked():
		// A blocked connection is alive: redialling would only lose the block. The message may still be
		// enqueued once the alarm clears (its expiration bounds how late).
		return fmt.Errorf("%w: the broker blocked the connection before confirming", ErrBlocked)
	case err != nil:
		log.Error("no publisher confirm in time; resetting connection", "timeout", confirmTimeout)
		s.Reset()
		return fmt.Errorf("%w: no confirm within %s", ErrUnavailable, confirmTimeout)
	case !ok && ch.IsClosed():
		return fmt.Errorf("%w: channel closed before the confirm", ErrConnectionLost)
	case !ok:
		return ErrNacked
	}
	return nil
}

// waitConfirm waits for dc like dc.WaitContext, but gives up as soon as the broker blocks the session: a
// memory or disk alarm holds confirms back until it clears.
func waitConfirm(ctx context.Context, s *Session, dc *amqp.DeferredConfirmation) (bool, error) {
	for {
		wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		ok, err := dc.WaitContext(wctx)
		cancel()
		switch {
		case err == nil:
			return ok, nil
		case ctx.Err() != nil:
			return false, ctx.Err()
		case s.Blocked():
			return false, ErrBlocked
		}
	}
}
