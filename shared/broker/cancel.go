package broker

import (
	"context"
	"fmt"
	"log/slog"

	amqp "github.com/rabbitmq/amqp091-go"
)

// CancelListenerConfig configures a CancelListener.
type CancelListenerConfig struct {
	URL  string
	Name string
	// Topology names the cancel exchange (Topology.CancelExchange), declared on every (re)connect.
	Topology Topology
	// OnNotice is called, in the listener's goroutine, with the request id of every cancel notice.
	OnNotice     func(requestID string)
	OnConnect    func()
	OnDisconnect func(error)
	Logger       *slog.Logger
}

// CancelListener receives the job cancel notices (RPCClient.NotifyCancel) on a queue of its own: a
// server-named, exclusive, auto-delete queue bound to the topology's fanout cancel exchange, redeclared on
// every reconnect (the broker deletes it with the connection). Notices published while it is disconnected
// are lost; the worker's backstop (job.Store.CancelRequested) covers them.
type CancelListener struct {
	cfg     CancelListenerConfig
	session *Session
}

// NewCancelListener returns a listener; call Run to connect.
func NewCancelListener(cfg CancelListenerConfig) *CancelListener {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.OnNotice == nil {
		cfg.OnNotice = func(string) {}
	}
	l := &CancelListener{cfg: cfg}
	l.session = NewSession(SessionConfig{URL: cfg.URL, Name: cfg.Name, Setup: l.setup,
		OnConnect: cfg.OnConnect, OnDisconnect: cfg.OnDisconnect, Logger: cfg.Logger})
	return l
}

func (l *CancelListener) setup(_ context.Context, _ *amqp.Connection, ch *amqp.Channel) error {
	ex := l.cfg.Topology.CancelExchange
	if ex == "" {
		return fmt.Errorf("cancel listener: the topology has no cancel exchange")
	}
	if err := ch.ExchangeDeclare(ex, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %q: %w", ex, err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return fmt.Errorf("declare the cancel queue: %w", err)
	}
	if err := ch.QueueBind(q.Name, "", ex, false, nil); err != nil {
		return fmt.Errorf("bind %q to %q: %w", q.Name, ex, err)
	}
	ds, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %q: %w", q.Name, err)
	}
	go func() {
		for d := range ds { // closed with the channel
			if d.Type != CancelNoticeType || d.CorrelationId == "" {
				l.cfg.Logger.Warn("ignoring a message on the cancel queue that is not a cancel notice", "type", d.Type)
				continue
			}
			l.cfg.OnNotice(d.CorrelationId)
		}
	}()
	return nil
}

// Run keeps the listener connected until ctx ends.
func (l *CancelListener) Run(ctx context.Context) error { return l.session.Run(ctx) }

// Connected reports whether the listener has a usable channel.
func (l *CancelListener) Connected() bool { return l.session.Connected() }

// Problem says why it is not connected (Session.Problem), or nil.
func (l *CancelListener) Problem() error { return l.session.Problem() }
