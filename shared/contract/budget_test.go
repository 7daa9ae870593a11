package contract

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewBudget(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		timeout  time.Duration
		grace    time.Duration
		hardStop time.Time
		want     time.Time
	}{
		{"no hard stop", 3 * time.Second, DefaultReplyGrace, time.Time{}, at.Add(4500 * time.Millisecond)},
		{"hard stop far away", 3 * time.Second, time.Second, at.Add(time.Minute), at.Add(4 * time.Second)},
		{"hard stop first", 20 * time.Second, time.Second, at.Add(10 * time.Second), at.Add(10*time.Second - InvocationMargin)},
		{"hard stop exactly at the margin", 3 * time.Second, time.Second, at.Add(4*time.Second + InvocationMargin), at.Add(4 * time.Second)},
	} {
		b := NewBudget(at, tc.timeout, tc.grace, tc.hardStop)
		if !b.Deadline.Equal(tc.want) || !b.WaitUntil().Equal(tc.want) {
			t.Errorf("%s: deadline %v, wait until %v, want %v", tc.name, b.Deadline.Sub(at), b.WaitUntil().Sub(at), tc.want.Sub(at))
		}
		if b.Timeout.Duration() != tc.timeout || !b.Accepted.Equal(at) {
			t.Errorf("%s: timeout %v accepted %v", tc.name, b.Timeout.Duration(), b.Accepted)
		}
	}
}

func TestBudgetRunTimeAndStartBy(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	b := Budget{Accepted: at, Timeout: 10, Deadline: at.Add(2 * time.Second)}
	if got, want := b.StartBy(), at.Add(2*time.Second-ReplyMargin); !got.Equal(want) {
		t.Errorf("StartBy = %v, want %v", got, want)
	}
	for _, tc := range []struct {
		name string
		now  time.Time
		want time.Duration
	}{
		{"cut by the deadline", at, 2*time.Second - ReplyMargin},
		{"later start, less time", at.Add(time.Second), time.Second - ReplyMargin},
		{"inside the reply margin", at.Add(2*time.Second - ReplyMargin/2), -ReplyMargin / 2},
		{"after the deadline", at.Add(3 * time.Second), -time.Second - ReplyMargin},
	} {
		if got := b.RunTime(tc.now); got != tc.want {
			t.Errorf("%s: RunTime = %v, want %v", tc.name, got, tc.want)
		}
	}
	long := Budget{Timeout: 1, Deadline: at.Add(time.Minute)}
	if got := long.RunTime(at); got != time.Second {
		t.Errorf("RunTime with a far deadline = %v, want the timeout", got)
	}
}

func TestBudgetExpiration(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		left time.Duration
		want time.Duration
		err  error
	}{
		{7 * time.Second, 7 * time.Second, nil},
		{1500 * time.Microsecond, 2 * time.Millisecond, nil},
		{time.Nanosecond, time.Millisecond, nil},
		{0, 0, ErrExpired},
		{-time.Second, 0, ErrExpired},
	} {
		b := Budget{Timeout: 1, Deadline: at.Add(tc.left)}
		got, err := b.Expiration(at)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("left %v: Expiration = %v, %v; want %v, %v", tc.left, got, err, tc.want, tc.err)
		}
	}
}

// The budget travels embedded in the request: the wire keeps "timeout" and "deadline" where they were and
// adds "accepted_at"; a request without accepted_at (an older gateway) still decodes.
func TestBudgetWireCompatibility(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	req := Request{Version: Version, RequestID: "r", ScriptName: "s", Budget: NewBudget(at, 2*time.Second, time.Second, time.Time{})}
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"timeout":2`, `"deadline":"2026-12-05T06:00:03Z"`, `"accepted_at":"2026-12-05T06:00:00Z"`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("%s lacks %s", body, want)
		}
	}
	var old Request
	if err := json.Unmarshal([]byte(`{"version":1,"request_id":"r","script_name":"s","timeout":2.5,"deadline":"2026-12-05T06:00:03Z"}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.Timeout != 2.5 || !old.Deadline.Equal(at.Add(3*time.Second)) || !old.Accepted.IsZero() || old.Validate() != nil {
		t.Errorf("old request decoded as %+v (%v)", old.Budget, old.Validate())
	}
}

func TestNewJobBudget(t *testing.T) {
	at := time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	b := NewJobBudget(at, 60*time.Second, DefaultReplyGrace, 10*time.Minute, 25*time.Second, time.Time{})
	if want := at.Add(10*time.Minute + 60*time.Second + DefaultReplyGrace); !b.Deadline.Equal(want) {
		t.Errorf("deadline %s, want %s (queue wait + timeout + grace)", b.Deadline, want)
	}
	if want := at.Add(25 * time.Second); !b.WaitUntil().Equal(want) {
		t.Errorf("wait until %s, want the end of the sync window %s", b.WaitUntil(), want)
	}
	// A job started late in its queue wait still runs its whole timeout.
	if got := b.RunTime(at.Add(9 * time.Minute)); got != 60*time.Second {
		t.Errorf("run time after 9 min in the queue = %s, want the whole 60s", got)
	}
	// A Lambda invocation's hard stop cuts the sync window, not the job.
	stop := at.Add(10 * time.Second)
	b = NewJobBudget(at, 60*time.Second, DefaultReplyGrace, 0, 25*time.Second, stop)
	if want := stop.Add(-InvocationMargin); !b.WaitUntil().Equal(want) {
		t.Errorf("wait until %s, want the invocation's stop less its margin %s", b.WaitUntil(), want)
	}
	if b.Deadline.Before(at.Add(60 * time.Second)) {
		t.Errorf("deadline %s was cut by the invocation's stop", b.Deadline)
	}
	// Prefer: respond-async: no wait at all; a sync window longer than the job ends with the job.
	if b := NewJobBudget(at, time.Second, DefaultReplyGrace, 0, 0, time.Time{}); !b.WaitUntil().Equal(at) {
		t.Errorf("respond-async waits until %s, want %s", b.WaitUntil(), at)
	}
	if b := NewJobBudget(at, time.Second, time.Second, 0, time.Hour, time.Time{}); !b.WaitUntil().Equal(b.Deadline) {
		t.Errorf("sync window past the deadline: wait until %s, want the deadline %s", b.WaitUntil(), b.Deadline)
	}
	// The sync window does not travel.
	doc, err := json.Marshal(b)
	if err != nil || strings.Contains(string(doc), "sync") {
		t.Errorf("budget on the wire %s (%v): the sync window must not travel", doc, err)
	}
}
