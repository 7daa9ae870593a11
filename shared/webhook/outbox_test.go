package webhook

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/job"
)

func finalJob() job.Job {
	at := time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC)
	return job.Job{RequestID: "req-1", Owner: "client-a", ScriptName: "demo", Status: job.StatusFailed, CreatedAt: at,
		StartedAt: at.Add(time.Second), FinishedAt: at.Add(2 * time.Second), CallbackURL: "https://example.com/hook",
		Error:   &contract.Error{Code: "script_error", Message: "boom"},
		Webhook: &job.WebhookState{Status: job.WebhookPending, Attempts: 2}}
}

func TestPayload(t *testing.T) {
	body, err := Payload(finalJob())
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"owner", "webhook"} {
		if _, ok := fields[absent]; ok {
			t.Errorf("payload has %q: %s", absent, body)
		}
	}
	for _, present := range []string{"request_id", "script_name", "status", "created_at", "started_at", "finished_at", "error", "callback_url"} {
		if _, ok := fields[present]; !ok {
			t.Errorf("payload lacks %q: %s", present, body)
		}
	}
	if !strings.HasPrefix(string(body), `{"request_id":"req-1",`) {
		t.Errorf("payload does not start with the request id: %s", body)
	}
}

func TestNewMessage(t *testing.T) {
	now := time.Now()
	m, err := newMessage(finalJob(), now)
	if err != nil {
		t.Fatal(err)
	}
	if m.Attempt != 1 || !m.FirstAttempt.Equal(now) || m.Owner != "client-a" || len(m.Body) == 0 || m.CallbackURL != "https://example.com/hook" {
		t.Errorf("message %+v", m)
	}
	data, _ := json.Marshal(m)
	back, err := decodeMessage(data)
	if err != nil || back.RequestID != "req-1" || string(back.Body) != string(m.Body) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

func TestDecodeMessage(t *testing.T) {
	valid := `"request_id":"r1","owner":"o","callback_url":"http://a","attempt":2,"first_attempt_at":"2026-01-01T00:00:00Z"`
	good := []string{
		`{` + valid + `,"body":{"request_id":"r1"}}`,
		`{` + valid + `}`, // no body: read from the store with the owner
	}
	for _, in := range good {
		if _, err := decodeMessage([]byte(in)); err != nil {
			t.Errorf("decodeMessage(%s): %v", in, err)
		}
	}
	bad := map[string]string{
		"not json":        `hello`,
		"array":           `[1]`,
		"bad request id":  `{"request_id":"../../x","owner":"o","callback_url":"http://a","attempt":1,"first_attempt_at":"2026-01-01T00:00:00Z"}`,
		"no callback":     `{"request_id":"r1","owner":"o","attempt":1,"first_attempt_at":"2026-01-01T00:00:00Z"}`,
		"attempt 0":       `{"request_id":"r1","owner":"o","callback_url":"http://a","attempt":0,"first_attempt_at":"2026-01-01T00:00:00Z"}`,
		"attempt huge":    `{"request_id":"r1","owner":"o","callback_url":"http://a","attempt":100000,"first_attempt_at":"2026-01-01T00:00:00Z"}`,
		"no first":        `{"request_id":"r1","owner":"o","callback_url":"http://a","attempt":1}`,
		"no body no ownr": `{"request_id":"r1","callback_url":"http://a","attempt":1,"first_attempt_at":"2026-01-01T00:00:00Z"}`,
		"bad time":        `{"request_id":"r1","owner":"o","callback_url":"http://a","attempt":1,"first_attempt_at":"yesterday"}`,
		"too large":       `{"request_id":"r1","owner":"` + strings.Repeat("o", MaxMessage) + `"}`,
	}
	for name, in := range bad {
		if _, err := decodeMessage([]byte(in)); err == nil {
			t.Errorf("%s: decodeMessage accepted %.80s", name, in)
		}
	}
}

// FuzzDecodeMessage: whatever arrives on the queue, decodeMessage never panics, and what it accepts is
// usable: a valid request id, a callback, a sane attempt, a first attempt time, and a body or an owner.
func FuzzDecodeMessage(f *testing.F) {
	f.Add([]byte(`{"request_id":"r1","owner":"o","callback_url":"http://a","attempt":2,"first_attempt_at":"2026-01-01T00:00:00Z","body":{}}`))
	f.Add([]byte(`{"request_id":"r1","attempt":-1}`))
	f.Add([]byte(`{"body":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeMessage(data)
		if err != nil {
			return
		}
		if job.CheckRequestID(m.RequestID) != nil || m.CallbackURL == "" || m.Attempt < 1 || m.Attempt > 1000 ||
			m.FirstAttempt.IsZero() || (len(m.Body) == 0 && m.Owner == "") || (len(m.Body) > 0 && !json.Valid(m.Body)) {
			t.Fatalf("accepted an unusable message %+v", m)
		}
	})
}

func TestFormatDelay(t *testing.T) {
	tests := map[time.Duration]string{
		time.Second:                     "1s",
		30 * time.Second:                "30s",
		2 * time.Minute:                 "2m",
		90 * time.Second:                "1m30s",
		128 * time.Minute:               "2h8m",
		4 * time.Hour:                   "4h",
		250 * time.Millisecond:          "250ms",
		1500 * time.Millisecond:         "1.5s",
		time.Hour + 30*time.Second:      "1h0m30s",
		24*time.Hour + 10*time.Minute:   "24h10m",
		10*time.Minute + 10*time.Second: "10m10s",
	}
	for d, want := range tests {
		if got := FormatDelay(d); got != want {
			t.Errorf("FormatDelay(%s) = %q, want %q", d, got, want)
		}
	}
	q := NewQueues("scraping_tasks")
	if q.Main != "scraping_tasks.webhooks" || q.Dead != "scraping_tasks.webhooks.dead" || q.Delay(2*time.Minute) != "scraping_tasks.webhooks.delay.2m" {
		t.Errorf("queue names %+v, %s", q, q.Delay(2*time.Minute))
	}
}

func TestDelayLevels(t *testing.T) {
	got := DefaultSchedule().DelayLevels()
	want := []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 8 * time.Minute, 32 * time.Minute, 128 * time.Minute, 4 * time.Hour}
	if len(got) != len(want) {
		t.Fatalf("levels %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("levels %v, want %v", got, want)
		}
	}
}

func testDeliverer(t *testing.T, s Schedule, random float64) *Deliverer {
	t.Helper()
	d, err := NewDeliverer(DelivererConfig{URL: "amqp://x", TaskQueue: "t", Store: job.NewMemory(0, nil),
		Secrets: []Secret{newSecret(t)}, Schedule: s, CheckAddr: func(netip.Addr, int) error { return nil },
		Random: func() float64 { return random }})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestNextDelay(t *testing.T) {
	s := DefaultSchedule()
	for _, random := range []float64{0, 0.5, 0.999} {
		d := testDeliverer(t, s, random)
		for retry := 1; retry <= 12; retry++ {
			delay, level, ok := d.nextDelay(retry, 0)
			if !ok || level != s.Base(retry) || delay > level || delay < time.Duration(float64(level)*(1-s.Jitter))-time.Millisecond {
				t.Errorf("random %v, retry %d: delay %s, level %s, %v; want a delay in [%.0f%%, 100%%] of %s",
					random, retry, delay, level, ok, (1-s.Jitter)*100, s.Base(retry))
			}
		}
	}
	d := testDeliverer(t, s, 0) // no jitter drawn: delay = level
	if _, _, ok := d.nextDelay(5, 24*time.Hour-8*time.Minute); !ok {
		t.Error("a retry landing exactly at the max age was refused")
	}
	if _, _, ok := d.nextDelay(5, 24*time.Hour-8*time.Minute+time.Second); ok {
		t.Error("a retry past the max age was planned")
	}
	if d.MaxAttemptLabel() != 13 {
		t.Errorf("max attempt label %d, want 13 (12 retries + 1)", d.MaxAttemptLabel())
	}
}

func TestNewDelivererRefusesIncompleteConfig(t *testing.T) {
	_, err := NewDeliverer(DelivererConfig{})
	for _, want := range []string{"URL and TaskQueue", "no job store", "no signing secret", "no address check", "initial delays"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewDeliverer(empty config): %v; want it to say %q", err, want)
		}
	}
	_, err = NewDeliverer(DelivererConfig{URL: "amqp://x", TaskQueue: "t", Store: job.NewMemory(0, nil),
		Secrets: []Secret{{}}, Schedule: DefaultSchedule(), CheckAddr: func(netip.Addr, int) error { return nil }})
	if err == nil || !strings.Contains(err.Error(), "secret 1 is empty") {
		t.Errorf("NewDeliverer with an empty secret: %v", err)
	}
}
