package runner

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
)

const mib = 1 << 20

func TestMemoryBudgetBoundsBlockingRuns(t *testing.T) {
	t.Parallel()
	b := newMemoryBudget(100 * mib)
	ctx := context.Background()
	soon := func() time.Time { return time.Now().Add(time.Second) }
	r1, res, err := b.acquire(ctx, soon(), time.Now(), 40*mib)
	if err != nil || res != nil {
		t.Fatal(res, err)
	}
	r2, res, err := b.acquire(ctx, soon(), time.Now(), 40*mib)
	if err != nil || res != nil {
		t.Fatal(res, err)
	}
	// A third of 40 MiB does not fit in the 20 left: until its deadline it gets a timeout result that names
	// the budget and what the run needed.
	_, res, err = b.acquire(ctx, time.Now().Add(50*time.Millisecond), time.Now(), 40*mib)
	if err != nil || res == nil || res.Status != contract.StatusTimeout || res.Err.Code != contract.CodeScriptTimeout ||
		!strings.Contains(res.Err.Message, "WORKER_MEMORY_BUDGET_MB, 100 MiB") || !strings.Contains(res.Err.Message, "2 runners and templates (80 MiB)") ||
		!strings.Contains(res.Err.Message, "needed 40 MiB") {
		t.Fatalf("third run of 40 MiB in a budget of 100: %+v, %v; want a timeout result naming the budget", res, err)
	}
	// Smaller charges fit where a larger one did not: 8 MiB twice.
	small1, res, err := b.acquire(ctx, soon(), time.Now(), 8*mib)
	if err != nil || res != nil {
		t.Fatal(res, err)
	}
	small2, res, err := b.acquire(ctx, soon(), time.Now(), 8*mib)
	if err != nil || res != nil {
		t.Fatal(res, err)
	}
	if used, holders := b.inUse(); used != 96*mib || holders != 4 {
		t.Fatalf("in use %d bytes by %d; want 96 MiB by 4", used, holders)
	}
	// Waiters are served in order: a large one at the head is not passed by a small one behind it.
	large := acquireLater(ctx, b, 40*mib)
	waitWaiters(t, b, 1, "a waiter")
	small := acquireLater(ctx, b, 4*mib)
	waitWaiters(t, b, 2, "two waiters")
	r1() // 56 MiB in use: the 40 at the head fits, then the 4 behind it
	lr, sr := <-large, <-small
	if lr == nil || sr == nil {
		t.Fatal("the waiters did not get the memory given back")
	}
	r1() // a second call of a release gives back nothing more
	if used, _ := b.inUse(); used != 100*mib {
		t.Fatalf("in use %d MiB; want 100", used>>20)
	}
	// A cancelled caller is an error, not a result, and leaves the queue.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, res, err := b.acquire(cctx, time.Now().Add(time.Minute), time.Now(), mib); err == nil || res != nil {
		t.Fatalf("cancelled: %+v, %v; want the context's error", res, err)
	}
	// A reservation (a template's) is taken even past the budget; runs wait until it is released.
	unreserve := b.reserve(30 * mib)
	for _, rel := range []func(){r2, small1, small2, lr, sr} {
		rel()
	}
	if used, holders := b.inUse(); used != 30*mib || holders != 1 {
		t.Fatalf("in use %d MiB by %d; want the reservation's 30 by 1", used>>20, holders)
	}
	// A charge larger than the whole budget is cut to it: such a run runs alone, once the budget is free.
	_, res, _ = b.acquire(ctx, time.Now().Add(50*time.Millisecond), time.Now(), 500*mib)
	if res == nil {
		t.Fatal("a run needing the whole budget ran beside a reservation")
	}
	unreserve()
	whole, res, err := b.acquire(ctx, soon(), time.Now(), 500*mib)
	if err != nil || res != nil {
		t.Fatalf("a run needing more than the budget never runs: %+v, %v", res, err)
	}
	whole()
	if used, holders := b.inUse(); used != 0 || holders != 0 || len(b.waiters) != 0 {
		t.Fatalf("all released: %d bytes by %d, %d waiting", used, holders, len(b.waiters))
	}
	if nb := newMemoryBudget(0); nb != nil {
		t.Fatal("a budget of 0 should be no bound")
	}
	var none *memoryBudget
	if release, res, err := none.acquire(ctx, time.Now(), time.Now(), mib); err != nil || res != nil || release == nil {
		t.Fatal("no budget must never wait")
	}
	none.reserve(mib)()
}

// A waiter that times out leaves the queue, and the waiters behind it that fit are served.
func TestMemoryBudgetTimedOutWaiterLetsSmallerOnesThrough(t *testing.T) {
	t.Parallel()
	b := newMemoryBudget(10 * mib)
	ctx := context.Background()
	held, _, _ := b.acquire(ctx, time.Now().Add(time.Second), time.Now(), 6*mib)
	done := make(chan *Result)
	go func() {
		_, res, _ := b.acquire(ctx, time.Now().Add(100*time.Millisecond), time.Now(), 8*mib)
		done <- res
	}()
	waitWaiters(t, b, 1, "a waiter")
	got := acquireLater(ctx, b, 4*mib)
	if res := <-done; res == nil || res.Status != contract.StatusTimeout {
		t.Fatalf("the 8 MiB waiter: %+v; want a timeout", res)
	}
	release := <-got
	if release == nil {
		t.Fatal("the 4 MiB waiter behind a timed-out one was not served")
	}
	release()
	held()
}

func TestForkCharge(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ measured, want int64 }{
		{0, 40 * mib},          // nothing measured: RUNNER_MEMORY_MB
		{2 * mib, 8 * mib},     // the floor
		{16 * mib, 20 * mib},   // plus a quarter
		{100 * mib, 125 * mib}, // more than RUNNER_MEMORY_MB: what was measured counts
	} {
		if got := forkCharge(c.measured, 40*mib); got != c.want {
			t.Errorf("forkCharge(%d MiB) = %d MiB; want %d", c.measured>>20, got>>20, c.want>>20)
		}
	}
}

// A charge that has to wait asks for the missing memory (short: the warm pool stops idle runners), a held
// charge can grow past the budget and shrink back (a measured runner), and tryAcquire never waits nor passes
// a waiter.
func TestMemoryBudgetShortResizeAndTry(t *testing.T) {
	t.Parallel()
	b := newMemoryBudget(100 * mib)
	var missing []int64
	var mu sync.Mutex
	b.short = func(n int64) { mu.Lock(); missing = append(missing, n); mu.Unlock() }
	ctx := context.Background()
	held, ok := b.tryAcquire(70 * mib)
	if !ok {
		t.Fatal("tryAcquire of 70 MiB in an empty budget of 100 failed")
	}
	if _, ok := b.tryAcquire(40 * mib); ok {
		t.Fatal("tryAcquire of 40 MiB with 30 free succeeded")
	}
	got := acquireLater(ctx, b, 40*mib)
	waitFor(t, b.waiting, "a waiter")
	mu.Lock()
	if len(missing) != 1 || missing[0] != 10*mib {
		t.Errorf("short was told %v: want once, the 10 MiB missing", missing)
	}
	mu.Unlock()
	if _, ok := b.tryAcquire(mib); ok {
		t.Error("tryAcquire passed a waiter")
	}
	b.resize(20 * mib) // the holder grew: 90 MiB in use, past nothing yet
	if used, _ := b.inUse(); used != 90*mib {
		t.Fatalf("after growing by 20: %d MiB in use; want 90", used>>20)
	}
	b.resize(-40 * mib) // it shrank to 50: the waiter's 40 fit
	release := <-got
	if release == nil {
		t.Fatal("the waiter did not get the memory a shrinking holder gave back")
	}
	release()
	b.resize(20 * mib) // the holder's end: back to what it acquired (warmProc.dropCharge), then released
	held()
	if used, holders := b.inUse(); used != 0 || holders != 0 {
		t.Fatalf("all given back: %d MiB in use by %d", used>>20, holders)
	}
}

// acquireLater acquires n bytes of b in a goroutine of its own (waiting up to a minute); the channel gets
// the release, or nil when the acquisition failed.
func acquireLater(ctx context.Context, b *memoryBudget, n int64) <-chan func() {
	got := make(chan func(), 1)
	go func() {
		release, res, err := b.acquire(ctx, time.Now().Add(time.Minute), time.Now(), n)
		if err != nil || res != nil {
			release = nil
		}
		got <- release
	}()
	return got
}

// waitWaiters waits until n acquisitions wait in b.
func waitWaiters(t *testing.T, b *memoryBudget, n int, what string) {
	t.Helper()
	waitFor(t, func() bool { b.mu.Lock(); defer b.mu.Unlock(); return len(b.waiters) == n }, what)
}
