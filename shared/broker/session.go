package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// SessionConfig configures a Session.
type SessionConfig struct {
	// URL is the AMQP URL (amqp:// or amqps://).
	URL string
	// Name is shown as the connection name in the broker's management UI.
	Name string
	// Setup runs on every new channel before the session is ready: declare topology, set QoS, enable
	// confirms, start consumers. Goroutines it starts must end when the channel's notification and delivery
	// channels close (amqp091 closes them when the channel goes away).
	Setup func(ctx context.Context, conn *amqp.Connection, ch *amqp.Channel) error
	// OnConnect and OnDisconnect, if set, are called on every transition (for metrics and logs).
	OnConnect    func()
	OnDisconnect func(err error)
	// MinBackoff and MaxBackoff bound the redial delay (defaults 100 ms and 10 s).
	MinBackoff, MaxBackoff time.Duration
	// Heartbeat is the AMQP heartbeat interval (default 10 s).
	Heartbeat time.Duration
	Logger    *slog.Logger
}

// Session keeps one AMQP connection and one channel alive, redialling with backoff when they are lost.
type Session struct {
	cfg SessionConfig
	log *slog.Logger

	mu    sync.Mutex
	conn  *amqp.Connection
	ch    *amqp.Channel
	ready chan struct{} // closed while a channel is up; replaced when it goes down
	done  chan struct{} // closed when Run returns
	kick  chan struct{} // a caller is waiting: cut the backoff short
	// blocked is set while the broker blocks the connection's publishes (connection.blocked: a memory or
	// disk alarm).
	blocked atomic.Bool
	// problem is why the session is down (the last dial or connection error); nil while it is up.
	problem atomic.Pointer[error]
}

// NewSession returns a session; call Run to bring it up.
func NewSession(cfg SessionConfig) *Session {
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Session{
		cfg:   cfg,
		log:   log.With("connection", cfg.Name),
		ready: make(chan struct{}),
		done:  make(chan struct{}),
		kick:  make(chan struct{}, 1),
	}
}

// Run dials and keeps the session up until ctx ends, then closes the connection. It returns ctx's error.
//
// It logs once per change of state, not once per attempt: the session coming up (info), going down or
// failing to come up for a new reason (a warning naming the reason in words, see Explain); further attempts
// that fail for the same reason are logged at debug level only. Problem says the reason meanwhile.
func (s *Session) Run(ctx context.Context) error {
	defer close(s.done)
	delay := s.cfg.MinBackoff
	logged := "" // the reason last logged as a warning; "" after the session was up
	for {
		started := time.Now()
		up, err := s.serve(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(started) > 30*time.Second {
			delay = s.cfg.MinBackoff // it was up for a while: this is a new outage
		}
		s.problem.Store(&err)
		if up {
			logged = ""
		}
		if reason := Explain(err); reason != logged {
			s.log.Warn("amqp session down; redialling until it comes back (logged again when the reason changes)",
				"reason", reason, "error", err, "retry_in_ms", delay.Milliseconds())
			logged = reason
		} else {
			s.log.Debug("amqp session still down; redialling", "reason", reason, "retry_in_ms", delay.Milliseconds())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(jitter(delay)):
		case <-s.kick:
			// Someone needs the connection now (a Lambda invocation after a broker restart, say): try at
			// once rather than sleeping out the backoff; the backoff still grows if this attempt fails.
		}
		delay = min(delay*2, s.cfg.MaxBackoff)
	}
}

// serve brings up one connection+channel and blocks until it is lost or ctx ends. up says whether it came
// up before it ended.
func (s *Session) serve(ctx context.Context) (up bool, err error) {
	conn, err := Dial(ctx, s.cfg.URL, s.cfg.Name, s.cfg.Heartbeat)
	if err != nil {
		return false, err
	}
	defer func() { _ = conn.CloseDeadline(time.Now().Add(2 * time.Second)) }()
	connClosed := conn.NotifyClose(make(chan *amqp.Error, 1))
	s.blocked.Store(false)
	blocks := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	go func() {
		for b := range blocks { // closed with the connection
			s.blocked.Store(b.Active)
			s.log.Warn("broker flow control", "blocked", b.Active, "reason", b.Reason)
		}
		s.blocked.Store(false)
	}()
	ch, err := conn.Channel()
	if err != nil {
		return false, fmt.Errorf("open channel: %w", err)
	}
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if s.cfg.Setup != nil {
		if err := s.cfg.Setup(ctx, conn, ch); err != nil {
			return false, fmt.Errorf("set up channel: %w", err)
		}
	}

	s.mu.Lock()
	s.conn, s.ch = conn, ch
	close(s.ready)
	s.mu.Unlock()
	s.problem.Store(nil)
	s.log.Info("amqp session up")
	if s.cfg.OnConnect != nil {
		s.cfg.OnConnect()
	}

	var lost error
	select {
	case <-ctx.Done():
		lost = ctx.Err()
	case e := <-connClosed:
		lost = closeErr("connection", e)
	case e := <-chClosed:
		lost = closeErr("channel", e)
	}

	s.mu.Lock()
	s.conn, s.ch = nil, nil
	s.ready = make(chan struct{})
	s.mu.Unlock()
	if s.cfg.OnDisconnect != nil {
		s.cfg.OnDisconnect(lost)
	}
	return true, lost
}

func closeErr(what string, e *amqp.Error) error {
	if e == nil {
		return fmt.Errorf("%s closed", what)
	}
	return fmt.Errorf("%s closed: %w", what, e)
}

// Channel returns the session's channel, waiting up to wait (and no longer than ctx allows) for one to come
// up. It returns ErrUnavailable when none does, ErrClosed after Run has returned.
func (s *Session) Channel(ctx context.Context, wait time.Duration) (*amqp.Connection, *amqp.Channel, error) {
	s.mu.Lock()
	conn, ch, ready := s.conn, s.ch, s.ready
	s.mu.Unlock()
	if ch != nil && !ch.IsClosed() {
		return conn, ch, nil
	}
	select {
	case s.kick <- struct{}{}:
	default:
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-ready:
		return s.Channel(ctx, wait)
	case <-s.done:
		return nil, nil, ErrClosed
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	case <-timer.C:
		return nil, nil, ErrUnavailable
	}
}

// Blocked reports whether the broker blocks this session's publishes for now (a resource alarm). The
// connection is alive; publishes wait until the alarm clears.
func (s *Session) Blocked() bool { return s.blocked.Load() }

// Problem says why the session is not connected: the error of the last attempt to dial, or of the
// connection's loss. It is nil while the session is up, and before its first attempt ends. Explain turns it
// into words for logs and health checks.
func (s *Session) Problem() error {
	if p := s.problem.Load(); p != nil {
		return *p
	}
	return nil
}

// Connected reports whether the session currently has a usable channel.
func (s *Session) Connected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch != nil && !s.ch.IsClosed()
}

// Reset closes the current connection so the session redials. Use it when the connection looks alive but
// stopped answering (a confirm that never came).
func (s *Session) Reset() {
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	if conn != nil {
		// A connection being reset may be dead on the other side: do not wait for the broker's close-ok.
		_ = conn.CloseDeadline(time.Now().Add(500 * time.Millisecond))
	}
}

// Dial opens an AMQP connection, honouring ctx for the TCP dial and the handshake. Its writes are
// coalesced (coalescedConn): concurrent publishes and acks share syscalls.
func Dial(ctx context.Context, rawURL, name string, heartbeat time.Duration) (*amqp.Connection, error) {
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(name)
	dialer := &net.Dialer{}
	cfg := amqp.Config{
		Heartbeat:  heartbeat,
		Locale:     "en_US",
		Properties: props,
		Dial: func(network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// Bound the handshake; amqp091 clears the deadline once the connection is open.
			deadline := time.Now().Add(10 * time.Second)
			if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
				deadline = d
			}
			if err := c.SetDeadline(deadline); err != nil {
				c.Close()
				return nil, err
			}
			return coalesce(c), nil // coalesce.go
		},
	}
	conn, err := amqp.DialConfig(rawURL, cfg)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", Redact(rawURL), err)
	}
	return conn, nil
}

// Redact returns rawURL with its password replaced, for logs and errors.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable AMQP URL)"
	}
	return u.Redacted()
}

func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// errorsIsClosed reports whether err is amqp091's "channel/connection is not open".
func errorsIsClosed(err error) bool {
	return errors.Is(err, amqp.ErrClosed)
}
