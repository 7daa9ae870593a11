package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/job"
)

// Store is what the deliverer needs of the job store (job.Store has it).
type Store interface {
	// Get reads a job whose delivery body was too large to travel in the message.
	Get(ctx context.Context, id, owner string) (job.Job, error)
	// SetWebhook records the delivery state; the deliverer is its only writer.
	SetWebhook(ctx context.Context, id string, w job.WebhookState) error
}

// The outcomes of a delivery attempt (the outcome label of scraping_webhook_deliveries_total).
const (
	// OutcomeDelivered: the receiver answered 2xx.
	OutcomeDelivered = "delivered"
	// OutcomeRetry: the attempt failed (non-2xx, network, timeout); another is scheduled.
	OutcomeRetry = "retry"
	// OutcomeFailed: the attempt failed and WEBHOOK_MAX_AGE leaves no room for another (or the message was
	// unusable): dead-lettered, state failed.
	OutcomeFailed = "failed"
	// OutcomeRefused: the callback's address is forbidden (the SSRF guard); no connection was made;
	// dead-lettered, state failed, never retried.
	OutcomeRefused = "refused"
)

// Metrics counts delivery attempts by outcome and attempt number (bounded by the schedule: 1 to the
// planned retries + 1). A nil Metrics counts nothing.
type Metrics interface {
	Delivery(outcome string, attempt int)
}

// DelivererConfig configures a Deliverer.
type DelivererConfig struct {
	// URL is the AMQP URL; Name names the connection in the broker's UI.
	URL  string
	Name string
	// TaskQueue is the task queue whose webhooks are delivered (<task>.webhooks).
	TaskQueue string
	// Store records the delivery state (and reads jobs too large for their message).
	Store Store
	// Secrets sign every delivery: Secrets[0] and, during a rotation, the others (one signature each).
	Secrets []Secret
	// Schedule plans the retries; its Total is the maximum age of a delivery (WEBHOOK_MAX_AGE).
	Schedule Schedule
	// Concurrency bounds the deliveries in flight (the consumer's prefetch); default DefaultConcurrency.
	Concurrency int
	// Timeout bounds one attempt's HTTP request, connection to last byte; default DefaultTimeout.
	Timeout time.Duration
	// CheckAddr vets every address the delivery connects to, at connect time, after DNS resolution (so a
	// name that resolves to a forbidden address later, DNS rebinding, is still refused). Required: the
	// shared SSRF guard in production; tests pass their own.
	CheckAddr func(addr netip.Addr, port int) error
	// Metrics counts attempts (nil: none).
	Metrics      Metrics
	OnConnect    func()
	OnDisconnect func(error)
	Logger       *slog.Logger
	// Random returns numbers in [0, 1) for the retry jitter; nil uses math/rand/v2.
	Random func() float64
}

// Deliverer consumes <task>.webhooks and delivers each final job to its callback_url: an HTTP POST of
// the job's JSON, signed per Standard Webhooks, answered 2xx or retried per the schedule through the delay
// queues (durably: a retry waiting in a delay queue survives any restart), and dead-lettered to
// <task>.webhooks.dead when the maximum age leaves no room for another attempt or the address is refused.
// Every outcome is recorded with Store.SetWebhook. Delivery is at least once: a deliverer stopped between
// a receiver's 2xx and the ack delivers again; receivers dedupe on webhook-id (the request id).
type Deliverer struct {
	cfg     DelivererConfig
	log     *slog.Logger
	q       Queues
	client  *http.Client
	session *broker.Session
	// slots bounds the deliveries in flight; Shutdown takes them all to wait for the last.
	slots chan struct{}
	// work is the context of the deliveries in flight: Shutdown cancels it when its own ends.
	work       context.Context
	cancelWork context.CancelFunc

	mu          sync.Mutex
	stopped     bool
	ch          *amqp.Channel
	stopSession context.CancelFunc
	sessionDone chan struct{}
}

// consumerTag is the deliverer's consumer tag on its channel.
const consumerTag = "webhook-deliverer"

// NewDeliverer checks cfg and returns a deliverer; call Run to start it.
func NewDeliverer(cfg DelivererConfig) (*Deliverer, error) {
	var errs []error
	if cfg.URL == "" || cfg.TaskQueue == "" {
		errs = append(errs, errors.New("webhook deliverer: URL and TaskQueue are required"))
	}
	if cfg.Store == nil {
		errs = append(errs, errors.New("webhook deliverer: no job store"))
	}
	if len(cfg.Secrets) == 0 {
		errs = append(errs, errors.New("webhook deliverer: no signing secret (WEBHOOK_SECRET)"))
	}
	for i, s := range cfg.Secrets {
		if s.IsZero() {
			errs = append(errs, fmt.Errorf("webhook deliverer: secret %d is empty", i+1))
		}
	}
	if cfg.CheckAddr == nil {
		errs = append(errs, errors.New("webhook deliverer: no address check (CheckAddr): callbacks would reach any address"))
	}
	if err := cfg.Schedule.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Random == nil {
		cfg.Random = rand.Float64
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Deliverer{cfg: cfg, log: log, q: NewQueues(cfg.TaskQueue), slots: make(chan struct{}, cfg.Concurrency)}
	d.client = newClient(cfg.Timeout, cfg.CheckAddr)
	d.work, d.cancelWork = context.WithCancel(context.Background())
	d.session = broker.NewSession(broker.SessionConfig{
		URL: cfg.URL, Name: cfg.Name, Setup: d.setup,
		OnConnect: cfg.OnConnect, OnDisconnect: cfg.OnDisconnect, Logger: log,
	})
	return d, nil
}

// refusedError is a connection the address check refused.
type refusedError struct {
	addr string
	err  error
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("connection to %s refused by the address check: %v", e.addr, e.err)
}
func (e *refusedError) Unwrap() error { return e.err }

// newClient returns the delivery HTTP client: every connection's address is vetted by check as it is
// dialled (after DNS resolution); no proxy from the environment (the check must see the real target);
// redirects are not followed (a 3xx is a failed attempt: following one would let a receiver point the
// signed body, or the guard's decision, elsewhere); the whole request is bounded by timeout.
func newClient(timeout time.Duration, check func(netip.Addr, int) error) *http.Client {
	dialer := &net.Dialer{
		Timeout: timeout,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return &refusedError{addr: address, err: fmt.Errorf("not an IP address: %w", err)}
			}
			if err := check(ap.Addr().Unmap(), int(ap.Port())); err != nil {
				return &refusedError{addr: ap.Addr().Unmap().String(), err: err}
			}
			return nil
		},
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{
		Transport:     transport,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// setup runs on every new channel: declare the queues, confirm mode (retries and dead letters are
// published on this channel and confirmed before the message they replace is acked), prefetch, consume.
func (d *Deliverer) setup(ctx context.Context, _ *amqp.Connection, ch *amqp.Channel) error {
	if err := d.q.Declare(ch); err != nil {
		return err
	}
	for _, level := range d.cfg.Schedule.DelayLevels() {
		if err := d.q.DeclareDelay(ch, level); err != nil {
			return err
		}
	}
	if err := ch.Confirm(false); err != nil {
		return fmt.Errorf("enable publisher confirms: %w", err)
	}
	if err := ch.Qos(d.cfg.Concurrency, 0, false); err != nil {
		return fmt.Errorf("set prefetch %d: %w", d.cfg.Concurrency, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ch = ch
	if d.stopped {
		return nil // reconnected after Run ended: for acks of deliveries in flight only
	}
	ds, err := ch.Consume(d.q.Main, consumerTag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %q: %w", d.q.Main, err)
	}
	go func() {
		for dl := range ds { // closed with the channel
			select {
			case d.slots <- struct{}{}:
			case <-ctx.Done():
				return // unacked: the broker requeues it when the channel closes
			}
			go func() {
				defer func() { <-d.slots }()
				d.handle(d.work, ch, dl)
			}()
		}
	}()
	return nil
}

// Run connects and delivers until ctx ends; then it stops consuming (deliveries in flight go on) and
// returns ctx's error. Call Shutdown next.
func (d *Deliverer) Run(ctx context.Context) error {
	sessionCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	d.mu.Lock()
	d.stopSession, d.sessionDone = stop, done
	d.mu.Unlock()
	go func() { _ = d.session.Run(sessionCtx); close(done) }()
	<-ctx.Done()
	d.mu.Lock()
	d.stopped = true
	ch := d.ch
	d.mu.Unlock()
	if ch != nil && !ch.IsClosed() {
		if err := ch.Cancel(consumerTag, false); err != nil {
			d.log.Warn("cancel the webhook consumer", "error", err)
		}
	}
	return ctx.Err()
}

// Shutdown waits for the deliveries in flight until ctx ends (then aborts them: the broker redelivers
// their messages), and closes the connection. Call it after Run has returned.
func (d *Deliverer) Shutdown(ctx context.Context) error {
	var err error
wait:
	for range cap(d.slots) {
		select {
		case d.slots <- struct{}{}:
		case <-ctx.Done():
			err = fmt.Errorf("webhook deliveries still in flight: %w", ctx.Err())
			break wait
		}
	}
	d.cancelWork()
	d.mu.Lock()
	stop, done := d.stopSession, d.sessionDone
	d.mu.Unlock()
	if stop == nil {
		return err // never ran
	}
	stop()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("close the webhook deliverer's connection: %w", ctx.Err()))
	}
	return err
}

// Connected reports whether the deliverer has a usable channel.
func (d *Deliverer) Connected() bool { return d.session.Connected() }

// attemptResult is what one HTTP attempt came to.
type attemptResult struct {
	delivered bool
	refused   bool
	// permanent: no retry can succeed (the job is gone from the store, the request cannot be built).
	permanent bool
	err       string // why it failed, for last_error (never the secret)
}

// handle delivers one message and settles it.
func (d *Deliverer) handle(ctx context.Context, ch *amqp.Channel, dl amqp.Delivery) {
	m, err := decodeMessage(dl.Body)
	if err != nil {
		// Poison: no retry can fix it. Rejected without requeue, the queue dead-letters it.
		d.log.Error("malformed webhook message; dead-lettering it", "error", err, "message_id", dl.MessageId)
		d.count(OutcomeFailed, 1)
		_ = dl.Nack(false, false)
		if m.RequestID != "" && job.CheckRequestID(m.RequestID) == nil {
			d.record(ctx, m.RequestID, job.WebhookState{Status: job.WebhookFailed, Attempts: max(m.Attempt-1, 0),
				LastError: "undeliverable: " + err.Error()})
		}
		return
	}
	log := d.log.With("request_id", m.RequestID, "attempt", m.Attempt)
	res := d.attempt(ctx, m)
	if ctx.Err() != nil {
		// Shutting down past its bound: leave the message unacked; the broker redelivers it.
		return
	}
	state := job.WebhookState{Attempts: m.Attempt, LastError: res.err}
	var next *amqp.Publishing
	var nextQueue, outcome string
	switch {
	case res.delivered:
		state.Status, outcome = job.WebhookDelivered, OutcomeDelivered
	case res.refused:
		state.Status, outcome = job.WebhookFailed, OutcomeRefused
		nextQueue, next = d.q.Dead, d.repost(m, m.Attempt, res.err, 0)
	case res.permanent:
		state.Status, outcome = job.WebhookFailed, OutcomeFailed
		nextQueue, next = d.q.Dead, d.repost(m, m.Attempt, res.err, 0)
	default:
		delay, level, ok := d.nextDelay(m.Attempt, time.Since(m.FirstAttempt))
		if ok {
			state.Status, outcome = job.WebhookPending, OutcomeRetry
			if err := d.q.DeclareDelay(ch, level); err != nil {
				log.Error("declare a webhook delay queue; the message is redelivered", "error", err)
				_ = dl.Nack(false, true)
				return
			}
			nextQueue, next = d.q.Delay(level), d.repost(m, m.Attempt+1, res.err, delay)
		} else {
			state.Status, outcome = job.WebhookFailed, OutcomeFailed
			state.LastError = fmt.Sprintf("gave up after %d attempts over %s (WEBHOOK_MAX_AGE %s): %s",
				m.Attempt, time.Since(m.FirstAttempt).Round(time.Second), d.cfg.Schedule.Total, res.err)
			nextQueue, next = d.q.Dead, d.repost(m, m.Attempt, state.LastError, 0)
		}
	}
	if next != nil {
		// The next step is durable before this message goes: a crash in between delivers twice, never zero.
		if err := publishConfirmed(ctx, ch, nextQueue, *next); err != nil {
			log.Error("publish the webhook retry; the message is redelivered", "queue", nextQueue, "error", err)
			_ = dl.Nack(false, true)
			return
		}
	}
	d.count(outcome, m.Attempt)
	d.record(ctx, m.RequestID, state)
	if err := dl.Ack(false); err != nil {
		log.Warn("ack a webhook message (it will be redelivered)", "error", err)
	}
	switch outcome {
	case OutcomeDelivered:
		log.Info("webhook delivered")
	case OutcomeRetry:
		log.Info("webhook attempt failed; retrying later", "error", res.err)
	default:
		log.Warn("webhook failed for good; dead-lettered", "outcome", outcome, "error", state.LastError)
	}
}

// nextDelay returns the jittered delay before retry number retry and its level (the delay queue), or
// false when that retry would start later than the schedule's Total after the first attempt. The jitter
// only shortens a delay (by up to Jitter), so the message's expiration never exceeds its queue's TTL.
func (d *Deliverer) nextDelay(retry int, elapsed time.Duration) (delay, level time.Duration, ok bool) {
	s := d.cfg.Schedule
	level = s.Base(retry).Round(time.Millisecond)
	if level <= 0 {
		return 0, 0, false
	}
	delay = time.Duration(float64(level) * (1 - s.Jitter*d.cfg.Random())).Round(time.Millisecond)
	delay = max(delay, time.Millisecond)
	if elapsed+delay > s.Total {
		return 0, 0, false
	}
	return delay, level, true
}

// repost returns the message m continued: for attempt, after lastErr, expiring after expire (0: never).
func (d *Deliverer) repost(m message, attempt int, lastErr string, expire time.Duration) *amqp.Publishing {
	m.Attempt, m.LastError = attempt, lastErr
	data, err := json.Marshal(m)
	if err != nil { // cannot happen: m was decoded from JSON
		d.log.Error("encode a webhook message", "error", err)
		return nil
	}
	p := publishing(m, data)
	if expire > 0 {
		p.Expiration = strconv.FormatInt(expire.Milliseconds(), 10)
	}
	return &p
}

// publishConfirmed publishes msg to queue on ch and waits for the broker's confirm.
func publishConfirmed(ctx context.Context, ch *amqp.Channel, queue string, msg amqp.Publishing) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false, msg)
	if err != nil {
		return err
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return broker.ErrNacked
	}
	return nil
}

// maxLastError bounds last_error's length.
const maxLastError = 300

// attempt makes one HTTP attempt of m.
func (d *Deliverer) attempt(ctx context.Context, m message) attemptResult {
	u, err := url.Parse(m.CallbackURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return attemptResult{refused: true, err: "callback_url is not an http(s) URL without credentials"}
	}
	body := []byte(m.Body)
	if len(body) == 0 {
		j, err := d.cfg.Store.Get(ctx, m.RequestID, m.Owner)
		if err == nil {
			body, err = Payload(j)
		}
		if err != nil {
			// Gone (past its retention) is for good; a store outage is worth retrying.
			return attemptResult{permanent: errors.Is(err, job.ErrNotFound) || errors.Is(err, job.ErrInvalid), err: truncate("read the job from the store: " + err.Error())}
		}
	}
	headers, err := Sign(d.cfg.Secrets[0], m.RequestID, time.Now(), body, d.cfg.Secrets[1:]...)
	if err != nil {
		return attemptResult{permanent: true, err: truncate("sign: " + err.Error())}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return attemptResult{permanent: true, err: truncate("build the request: " + err.Error())}
	}
	for name, values := range headers {
		req.Header[name] = values
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "scrape-platform-webhooks/1")
	resp, err := d.client.Do(req)
	if err != nil {
		if refused, ok := errors.AsType[*refusedError](err); ok {
			return attemptResult{refused: true, err: truncate(refused.Error())}
		}
		return attemptResult{err: truncate(describeNetError(err))}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return attemptResult{delivered: true}
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return attemptResult{err: fmt.Sprintf("HTTP %d: the receiver redirected (to %q); redirects are not followed",
			resp.StatusCode, truncateTo(resp.Header.Get("Location"), 100))}
	}
	return attemptResult{err: "HTTP " + resp.Status}
}

// describeNetError says why a request got no answer, without the URL (url.Error repeats it; it is in
// the job already).
func describeNetError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "no answer within the timeout: " + err.Error()
	}
	return err.Error()
}

func truncate(s string) string { return truncateTo(s, maxLastError) }

func truncateTo(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// record writes the delivery state, trying three times within a few seconds; a store that stays down
// leaves the state as it was (logged): the delivery itself does not wait for the store.
func (d *Deliverer) record(ctx context.Context, id string, w job.WebhookState) {
	w.UpdatedAt = time.Now().UTC()
	var err error
	for try := range 3 {
		if try > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Duration(try) * 500 * time.Millisecond):
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = d.cfg.Store.SetWebhook(rctx, id, w)
		cancel()
		if err == nil {
			return
		}
	}
	d.log.Error("record the webhook state", "request_id", id, "status", w.Status, "error", err)
}

// count reports an attempt to the metrics, with the attempt number capped at the plan's length + 1.
func (d *Deliverer) count(outcome string, attempt int) {
	if d.cfg.Metrics == nil {
		return
	}
	d.cfg.Metrics.Delivery(outcome, min(max(attempt, 1), d.MaxAttemptLabel()))
}

// MaxAttemptLabel is the largest attempt label the metrics see: the planned retries + 1.
func (d *Deliverer) MaxAttemptLabel() int { return len(d.cfg.Schedule.Plan()) + 1 }
