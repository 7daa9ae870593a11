package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
)

// newStoreFunc returns a fresh, empty store for one test, reading time from now.
type newStoreFunc func(t *testing.T, now func() time.Time) Store

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func queued(id, owner string, at time.Time) Job {
	return Job{RequestID: id, Owner: owner, ScriptName: "example", Status: StatusQueued, CreatedAt: at}
}

func running(j Job, worker string, at time.Time) Job {
	j.Status, j.WorkerID, j.StartedAt = StatusRunning, worker, at
	return j
}

func completed(j Job, data string, at time.Time) Job {
	j.Status, j.FinishedAt = StatusCompleted, at
	j.Result = &Result{Data: []byte(data), Size: int64(len(data))}
	return j
}

// testStore is the conformance suite every Store implementation passes.
func testStore(t *testing.T, newStore newStoreFunc) {
	ctx := context.Background()

	t.Run("lifecycle", func(t *testing.T) {
		t.Parallel()
		c := newClock()
		s := newStore(t, c.Now)
		q := queued("req-1", "alice", c.Now())
		if err := s.Create(ctx, q); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(ctx, q); !errors.Is(err, ErrExists) {
			t.Fatalf("second Create: %v, want ErrExists", err)
		}
		got, err := s.Get(ctx, "req-1", "alice")
		if err != nil || got.Status != StatusQueued || !got.CreatedAt.Equal(q.CreatedAt) {
			t.Fatalf("Get queued: %+v, %v", got, err)
		}
		r := running(q, "worker-a", c.Now().Add(time.Second))
		if err := s.Start(ctx, r); err != nil {
			t.Fatal(err)
		}
		if got, err = s.Get(ctx, "req-1", "alice"); err != nil || got.Status != StatusRunning || got.WorkerID != "worker-a" {
			t.Fatalf("Get running: %+v, %v", got, err)
		}
		done := completed(r, `{"title":"x"}`, c.Now().Add(2*time.Second))
		final, won, err := s.Finish(ctx, done)
		if err != nil || !won || final.Status != StatusCompleted {
			t.Fatalf("Finish: %+v, %v, %v", final, won, err)
		}
		got, err = s.Get(ctx, "req-1", "alice")
		if err != nil || got.Status != StatusCompleted || string(got.Result.Data) != `{"title":"x"}` || got.FinishedAt.IsZero() {
			t.Fatalf("Get completed: %+v, %v", got, err)
		}
		// A late start (a redelivered task) learns the job is over.
		var fe *FinishedError
		if err := s.Start(ctx, r); !errors.As(err, &fe) || fe.Job.Status != StatusCompleted || !errors.Is(err, ErrFinished) {
			t.Fatalf("Start after Finish: %v", err)
		}
	})

	t.Run("owner isolation", func(t *testing.T) {
		t.Parallel()
		c := newClock()
		s := newStore(t, c.Now)
		if err := s.Create(ctx, queued("req-2", "alice", c.Now())); err != nil {
			t.Fatal(err)
		}
		for _, owner := range []string{"bob", "", "ALICE", "alice "} {
			if _, err := s.Get(ctx, "req-2", owner); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get by %q: %v, want ErrNotFound", owner, err)
			}
			if _, err := s.Cancel(ctx, "req-2", owner, c.Now()); !errors.Is(err, ErrNotFound) {
				t.Errorf("Cancel by %q: %v, want ErrNotFound", owner, err)
			}
		}
		if _, err := s.Get(ctx, "no-such-job", "alice"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get unknown: %v", err)
		}
		if _, err := s.Get(ctx, "../req-2", "alice"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get with a path: %v", err)
		}
		if got, err := s.Get(ctx, "req-2", "alice"); err != nil || got.Status != StatusQueued {
			t.Errorf("Get by the owner after the others: %+v, %v", got, err)
		}
	})

	t.Run("retention", func(t *testing.T) {
		t.Parallel()
		c := newClock()
		s := newStore(t, c.Now)
		if err := s.Create(ctx, queued("req-3", "alice", c.Now())); err != nil {
			t.Fatal(err)
		}
		c.Add(DefaultRetention - time.Second)
		if _, err := s.Get(ctx, "req-3", "alice"); err != nil {
			t.Fatalf("Get within retention: %v", err)
		}
		c.Add(2 * time.Second)
		if _, err := s.Get(ctx, "req-3", "alice"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get past retention: %v, want ErrNotFound", err)
		}
	})

	t.Run("cancel queued", func(t *testing.T) {
		t.Parallel()
		c := newClock()
		s := newStore(t, c.Now)
		q := queued("req-4", "alice", c.Now())
		q.CallbackURL = "https://example.com/hook"
		if err := s.Create(ctx, q); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.CancelRequested(ctx, "req-4"); err != nil || ok {
			t.Fatalf("CancelRequested before Cancel: %v, %v", ok, err)
		}
		got, err := s.Cancel(ctx, "req-4", "alice", c.Now().Add(time.Second))
		if err != nil || got.Status != StatusCancelled || got.Error == nil || got.Error.Code != CodeCancelled || got.FinishedAt.IsZero() {
			t.Fatalf("Cancel: %+v, %v", got, err)
		}
		if got.Webhook == nil || got.Webhook.Status != WebhookPending {
			t.Errorf("cancelled job with a callback: webhook %+v, want pending", got.Webhook)
		}
		if ok, err := s.CancelRequested(ctx, "req-4"); err != nil || !ok {
			t.Fatalf("CancelRequested after Cancel: %v, %v", ok, err)
		}
		// The worker that picks the task up must not run it.
		if err := s.Start(ctx, running(q, "worker-a", c.Now())); !errors.Is(err, ErrFinished) {
			t.Fatalf("Start of a cancelled job: %v, want ErrFinished", err)
		}
		again, err := s.Cancel(ctx, "req-4", "alice", c.Now().Add(time.Minute))
		if err != nil || again.Status != StatusCancelled || !again.FinishedAt.Equal(got.FinishedAt) {
			t.Fatalf("second Cancel: %+v, %v (first finished at %s)", again, err, got.FinishedAt)
		}
	})

	t.Run("cancel running, then the worker finishes", func(t *testing.T) {
		t.Parallel()
		c := newClock()
		s := newStore(t, c.Now)
		q := queued("req-5", "alice", c.Now())
		r := running(q, "worker-a", c.Now())
		if err := s.Create(ctx, q); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(ctx, r); err != nil {
			t.Fatal(err)
		}
		got, err := s.Cancel(ctx, "req-5", "alice", c.Now())
		if err != nil || got.Status != StatusCancelled || got.WorkerID != "worker-a" {
			t.Fatalf("Cancel running: %+v, %v", got, err)
		}
		final, won, err := s.Finish(ctx, completed(r, `1`, c.Now()))
		if err != nil || won || final.Status != StatusCancelled {
			t.Fatalf("Finish after Cancel: %+v, won %v, %v; want the cancelled job", final, won, err)
		}
	})

	t.Run("finished job stays finished", func(t *testing.T) {
		t.Parallel()
		c := newClock()
		s := newStore(t, c.Now)
		q := queued("req-6", "alice", c.Now())
		if err := s.Create(ctx, q); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Finish(ctx, completed(running(q, "w", c.Now()), `"ok"`, c.Now())); err != nil {
			t.Fatal(err)
		}
		got, err := s.Cancel(ctx, "req-6", "alice", c.Now())
		if err != nil || got.Status != StatusCompleted {
			t.Fatalf("Cancel of a completed job: %+v, %v", got, err)
		}
		if ok, _ := s.CancelRequested(ctx, "req-6"); ok {
			t.Error("Cancel of a finished job left a cancel marker")
		}
	})

	t.Run("final write race", func(t *testing.T) {
		t.Parallel()
		c := newClock()
		s := newStore(t, c.Now)
		q := queued("req-7", "alice", c.Now())
		if err := s.Create(ctx, q); err != nil {
			t.Fatal(err)
		}
		const racers = 8
		type outcome struct {
			final Job
			won   bool
			err   error
		}
		out := make([]outcome, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				j := completed(running(q, fmt.Sprintf("worker-%d", i), c.Now()), fmt.Sprint(i), c.Now())
				if i%2 == 1 {
					j.Status, j.Result = StatusCancelled, nil
				}
				<-start
				f, won, err := s.Finish(ctx, j)
				out[i] = outcome{f, won, err}
			})
		}
		close(start)
		wg.Wait()
		winners := 0
		var winner Job
		for i, o := range out {
			if o.err != nil {
				t.Fatalf("racer %d: %v", i, o.err)
			}
			if o.won {
				winners++
				winner = o.final
			}
		}
		if winners != 1 {
			t.Fatalf("%d racers won the final write, want exactly 1", winners)
		}
		for i, o := range out {
			if o.final.WorkerID != winner.WorkerID || o.final.Status != winner.Status {
				t.Errorf("racer %d sees final %s by %s; the winner wrote %s by %s", i, o.final.Status, o.final.WorkerID, winner.Status, winner.WorkerID)
			}
		}
		got, err := s.Get(ctx, "req-7", "alice")
		if err != nil || got.WorkerID != winner.WorkerID || got.Status != winner.Status {
			t.Fatalf("Get after the race: %+v, %v; winner %s by %s", got, err, winner.Status, winner.WorkerID)
		}
	})

	t.Run("idempotency", func(t *testing.T) {
		t.Parallel()
		c := newClock()
		s := newStore(t, c.Now)
		body := BodyHash([]byte(`{"script_name":"example"}`))
		id, existed, err := s.Claim(ctx, "alice", "key-1", body, "req-a")
		if err != nil || existed || id != "req-a" {
			t.Fatalf("first Claim: %q, %v, %v", id, existed, err)
		}
		id, existed, err = s.Claim(ctx, "alice", "key-1", body, "req-b")
		if err != nil || !existed || id != "req-a" {
			t.Fatalf("repeated Claim: %q, %v, %v; want req-a, existed", id, existed, err)
		}
		if _, _, err = s.Claim(ctx, "alice", "key-1", BodyHash([]byte(`{}`)), "req-c"); !errors.Is(err, ErrIdempotencyConflict) {
			t.Fatalf("Claim with another body: %v, want ErrIdempotencyConflict", err)
		}
		// Keys belong to their owner.
		id, existed, err = s.Claim(ctx, "bob", "key-1", body, "req-d")
		if err != nil || existed || id != "req-d" {
			t.Fatalf("another owner's Claim of the same key: %q, %v, %v", id, existed, err)
		}
		// After the window the key is free again, with any body.
		c.Add(IdempotencyWindow + time.Second)
		id, existed, err = s.Claim(ctx, "alice", "key-1", BodyHash([]byte(`{}`)), "req-e")
		if err != nil || existed || id != "req-e" {
			t.Fatalf("Claim after the window: %q, %v, %v; want req-e, new", id, existed, err)
		}
		id, existed, err = s.Claim(ctx, "alice", "key-1", BodyHash([]byte(`{}`)), "req-f")
		if err != nil || !existed || id != "req-e" {
			t.Fatalf("Claim after the takeover: %q, %v, %v; want req-e", id, existed, err)
		}
		for _, bad := range [][3]string{{"", "k", body}, {"alice", "", body}, {"alice", strings.Repeat("k", 256), body}, {"alice", "k", ""}} {
			if _, _, err := s.Claim(ctx, bad[0], bad[1], bad[2], "req-x"); !errors.Is(err, ErrInvalid) {
				t.Errorf("Claim(%q, %.10q..., %q): %v, want ErrInvalid", bad[0], bad[1], bad[2], err)
			}
		}
	})

	t.Run("idempotency race", func(t *testing.T) {
		t.Parallel()
		c := newClock()
		s := newStore(t, c.Now)
		body := BodyHash([]byte("same body"))
		const racers = 8
		ids := make([]string, racers)
		news := make([]bool, racers)
		errs := make([]error, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				<-start
				id, existed, err := s.Claim(ctx, "alice", "race-key", body, fmt.Sprintf("req-%d", i))
				ids[i], news[i], errs[i] = id, !existed, err
			})
		}
		close(start)
		wg.Wait()
		created := 0
		for i := range racers {
			if errs[i] != nil {
				t.Fatalf("racer %d: %v", i, errs[i])
			}
			if ids[i] != ids[0] {
				t.Fatalf("racers got request ids %q, want one", ids)
			}
			if news[i] {
				created++
			}
		}
		if created != 1 {
			t.Fatalf("%d racers created the entry, want 1 (ids %q)", created, ids)
		}
	})

	t.Run("webhook state", func(t *testing.T) {
		t.Parallel()
		c := newClock()
		s := newStore(t, c.Now)
		q := queued("req-8", "alice", c.Now())
		q.CallbackURL = "https://example.com/hook"
		if err := s.Create(ctx, q); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Get(ctx, "req-8", "alice"); got.Webhook == nil || got.Webhook.Status != WebhookPending {
			t.Fatalf("queued job with a callback: webhook %+v", got.Webhook)
		}
		if _, _, err := s.Finish(ctx, completed(running(q, "w", c.Now()), `1`, c.Now())); err != nil {
			t.Fatal(err)
		}
		w := WebhookState{Status: WebhookPending, Attempts: 2, LastError: "HTTP 503", UpdatedAt: c.Now()}
		if err := s.SetWebhook(ctx, "req-8", w); err != nil {
			t.Fatal(err)
		}
		got, err := s.Get(ctx, "req-8", "alice")
		if err != nil || got.Webhook == nil || got.Webhook.Attempts != 2 || got.Webhook.LastError != "HTTP 503" {
			t.Fatalf("Get after SetWebhook: %+v, %v", got.Webhook, err)
		}
	})

	t.Run("result claim check", func(t *testing.T) {
		t.Parallel()
		c := newClock()
		s := newStore(t, c.Now)
		data := []byte(`"` + strings.Repeat("0123456789abcdef", 3<<20/16) + `"`) // 3 MiB and a bit
		key, err := s.PutResult(ctx, "req-9", data)
		if err != nil {
			t.Fatal(err)
		}
		if key != "results/req-9.json" {
			t.Errorf("result key %q", key)
		}
		rc, err := s.OpenResult(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		back, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(back) != string(data) {
			t.Fatalf("OpenResult: %d bytes back of %d, %v", len(back), len(data), err)
		}
		q := queued("req-9", "alice", c.Now())
		j := completed(running(q, "w", c.Now()), "", c.Now())
		j.Result = &Result{Key: key, Size: int64(len(data))}
		if _, _, err := s.Finish(ctx, j); err != nil {
			t.Fatal(err)
		}
		if _, err := s.OpenResult(ctx, "results/none.json"); !errors.Is(err, ErrNotFound) {
			t.Errorf("OpenResult of a missing result: %v", err)
		}
		for _, bad := range []string{"jobs/req-9/final.json", "results/../x.json", "results/req-9.json/x"} {
			if _, err := s.OpenResult(ctx, bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("OpenResult(%q): %v, want ErrInvalid", bad, err)
			}
			if _, err := s.ResultURL(ctx, bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("ResultURL(%q): %v, want ErrInvalid", bad, err)
			}
		}
	})

	t.Run("invalid documents", func(t *testing.T) {
		t.Parallel()
		c := newClock()
		s := newStore(t, c.Now)
		q := queued("req-10", "alice", c.Now())
		bad := []struct {
			name string
			err  error
		}{
			{"queued without owner", s.Create(ctx, func() Job { j := q; j.Owner = ""; return j }())},
			{"queued with a path id", s.Create(ctx, func() Job { j := q; j.RequestID = "a/b"; return j }())},
			{"create running", s.Create(ctx, running(q, "w", c.Now()))},
			{"start queued", s.Start(ctx, q)},
			{"finish running", func() error { _, _, err := s.Finish(ctx, running(q, "w", c.Now())); return err }()},
			{"finish without finished_at", func() error {
				j := completed(q, "1", time.Time{})
				_, _, err := s.Finish(ctx, j)
				return err
			}()},
			{"result with data and key", func() error {
				j := completed(q, "1", c.Now())
				j.Result.Key = "results/req-10.json"
				_, _, err := s.Finish(ctx, j)
				return err
			}()},
		}
		for _, b := range bad {
			if !errors.Is(b.err, ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", b.name, b.err)
			}
		}
		if contract.Classify(ErrInvalid) != contract.Permanent {
			t.Error("ErrInvalid is not permanent")
		}
	})
}

func TestMemory(t *testing.T) {
	testStore(t, func(t *testing.T, now func() time.Time) Store { return NewMemory(DefaultRetention, now) })
}
