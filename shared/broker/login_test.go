package broker_test

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/brokertest"
)

// withURL returns the test broker's URL changed by mod.
func withURL(t *testing.T, mod func(u *url.URL)) string {
	u, err := url.Parse(brokertest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	mod(u)
	return u.String()
}

// TestCheckLoginReportsTheBrokersReason runs the login check against the real broker: a good login passes;
// a wrong password, an unknown virtual host and a closed port each fail with the reason in words (the
// broker's own for the first two, read from its connection.close, not guessed from a dropped socket).
func TestCheckLoginReportsTheBrokersReason(t *testing.T) {
	t.Parallel()
	if err := broker.CheckLogin(context.Background(), brokertest.URL(t)); err != nil {
		t.Fatalf("the test broker's own URL: %v", err)
	}
	tests := []struct {
		name string
		url  string
		want []string
	}{
		{"wrong password", withURL(t, func(u *url.URL) { u.User = url.UserPassword(u.User.Username(), "certainly-not-the-password") }),
			[]string{"refused the user name or password", "403 ACCESS_REFUSED", "RABBITMQ_URL"}},
		{"unknown virtual host", withURL(t, func(u *url.URL) { u.Path = "/no-such-vhost-" + brokertest.Name("v") }),
			[]string{"refused the virtual host", "530 NOT_ALLOWED", "not found"}},
		{"nothing listens", "amqp://guest:guest@127.0.0.1:1/", []string{"connection refused", "127.0.0.1:1", "is RabbitMQ running?"}},
	}
	for _, tt := range tests {
		err := broker.CheckLogin(context.Background(), tt.url)
		var le *broker.LoginError
		if !errors.As(err, &le) {
			t.Fatalf("%s: CheckLogin = %v, want a *LoginError", tt.name, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", tt.name, err, w)
			}
		}
		if strings.Contains(err.Error(), "certainly-not-the-password") {
			t.Errorf("%s: the error shows the password: %v", tt.name, err)
		}
	}
}

// records is a slog.Handler that keeps the messages and reasons of records at or above Warn.
type records struct {
	mu   sync.Mutex
	seen []string
}

func (r *records) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	line := rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "reason" {
			line += " reason=" + a.Value.String()
		}
		return true
	})
	r.mu.Lock()
	r.seen = append(r.seen, line)
	r.mu.Unlock()
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

func (r *records) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

// TestSessionSaysTheReasonOncePerChange keeps a session with a wrong password redialling: it logs one
// warning with the broker's reason however many attempts fail, and Problem says the same meanwhile.
func TestSessionSaysTheReasonOncePerChange(t *testing.T) {
	t.Parallel()
	rec := &records{}
	s := broker.NewSession(broker.SessionConfig{
		URL:  withURL(t, func(u *url.URL) { u.User = url.UserPassword(u.User.Username(), "wrong") }),
		Name: "wrong-password", MinBackoff: 1, MaxBackoff: 2,
		Logger: slog.New(rec),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	// Each failed attempt costs the broker's silent-close delay (amqp091 does not ask to be told why), so
	// wait for the attempts by watching Problem and the log, not a clock.
	for {
		if p := s.Problem(); p != nil && strings.Contains(broker.Explain(p), "403") {
			break
		}
		if _, _, err := s.Channel(ctx, 0); err == nil {
			t.Fatal("a session with a wrong password came up")
		}
		select {
		case <-done:
			t.Fatal("Run returned")
		default:
		}
		poll()
	}
	for len(rec.lines()) == 0 {
		poll()
	}
	first := s.Problem()
	for s.Problem() == first { // one more attempt, with the same reason
		poll()
	}
	cancel()
	<-done
	lines := rec.lines()
	if len(lines) != 1 || !strings.Contains(lines[0], "403") || !strings.Contains(lines[0], "user name or password") {
		t.Fatalf("warnings over several failed attempts: %q", lines)
	}
	if s.Connected() {
		t.Fatal("connected")
	}
}

// poll is the pause between two looks at a condition.
func poll() { time.Sleep(20 * time.Millisecond) }
