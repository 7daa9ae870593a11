package runner

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/sysstat"
)

// DefaultRunnerMemoryBytes is RUNNER_MEMORY_MB's default: what one blocking run's Python process is
// budgeted until its script's forked runners have been measured. Measured on this platform's runner: an
// idle interpreter with runner.py is 14 MB resident (RssAnon 7 MB); a script importing urllib, json and a
// parser such as bs4 is 25–40 MB while it works.
const DefaultRunnerMemoryBytes = 40 << 20

// Forked runners' charges (forkCharge): the private memory measured after their calls, plus a margin for
// what the next call may add, and never less than a floor.
const (
	// minForkCharge is the least a forked runner is charged: a process's kernel side (page tables, its
	// pipes' buffers, its stack) that its private pages do not show, and a call's garbage before Python
	// frees it.
	minForkCharge = 8 << 20
	// forkChargeMargin is the fraction added to the private memory measured (1/4: 25 %).
	forkChargeMargin = 4
	// forkSampleEvery is how often a template's children are measured at most, besides each child's first
	// call and its growth (forkRegrowth): reading a process's smaps_rollup walks its page tables (about
	// 0.4 ms for a 35 MB interpreter).
	forkSampleEvery = time.Second
	// forkRegrowth is how much a forked runner's resident memory (read after every call, cheaply) must
	// grow since it was last measured to be measured again at once.
	forkRegrowth = 4 << 20
)

// memoryBudget bounds the memory of the processes of blocking runs (def scrape), so that as many run as the
// worker's memory allows (issue 12), not as many as there are CPUs. A cold run is charged for its run; a
// one-call warm runner from its start to its end, idle or not (runWarm, warmProc.holdCharge), so that the
// runners a burst leaves idle count too: a run that has to wait for memory stops idle runners of other
// scripts, least recently used first, to free theirs (short, warmPool.evictIdle), and takes a runner of its
// own script put back meanwhile (Runner.waitCharge); a runner put back while only other scripts' runs wait
// is stopped instead of pooled. A runner is charged what its process is expected to cost (Runner.blockingCharge): RUNNER_MEMORY_MB
// when started afresh; when forked from its script's template, the most its script's forked runners were
// measured to hold (forkCharge), and once measured itself after a call, what it holds, more or less than
// that (measureForked, warmProc.setCharge). A template is charged its resident memory while it lives
// (reserve). Waiters are served in order. Async scripts share runners and are not counted here.
type memoryBudget struct {
	total int64
	// short, when set, is called (without the budget's lock) when a charge has to wait, with the bytes
	// missing: the warm pool stops idle runners to free their charges (warmPool.evictIdle).
	short func(missing int64)
	// report, when set, is told the budget's state whenever it changes (Metrics.MemoryBudget), with b.mu
	// held.
	report func(total, held int64, waiting int)

	mu      sync.Mutex
	used    int64
	holders int // runs and templates holding a charge
	waiters []*budgetWaiter
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed once the charge is granted
}

// newMemoryBudget returns a budget of total bytes, or nil (no bound) for total <= 0.
func newMemoryBudget(total int64) *memoryBudget {
	if total <= 0 {
		return nil
	}
	return &memoryBudget{total: total}
}

// acquire charges n bytes, waiting for them until ctx ends or until deadline, whichever comes first. A
// charge larger than the whole budget is cut to it: such a run runs alone. It returns the release, or a
// timeout Result when the memory did not become free in time.
func (b *memoryBudget) acquire(ctx context.Context, deadline time.Time, start time.Time, n int64) (release func(), res *Result, err error) {
	if b == nil {
		return func() {}, nil, nil
	}
	n = b.clamp(n)
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.total {
		b.used += n
		b.holders++
		b.changed()
		b.mu.Unlock()
		return b.releaser(n), nil, nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	missing := min(n, b.used+b.queued()-b.total) // this waiter's part of what is missing
	b.changed()
	b.mu.Unlock()
	if b.short != nil {
		b.short(missing)
	}
	wait, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	select {
	case <-w.ready:
		return b.releaser(n), nil, nil
	case <-wait.Done():
	}
	b.mu.Lock()
	select {
	case <-w.ready: // granted while the wait ended: give it back
		b.mu.Unlock()
		b.releaser(n)()
		b.mu.Lock()
	default:
		for i, o := range b.waiters {
			if o == w {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				break
			}
		}
		b.grant() // the waiters behind this one may fit now
	}
	used, holders := b.used, b.holders
	b.mu.Unlock()
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	r := failure(Result{Duration: time.Since(start)}, contract.StatusTimeout, contract.CodeScriptTimeout,
		fmt.Sprintf("no memory for this blocking (def scrape) run became free before its timeout: the worker's memory budget "+
			"(WORKER_MEMORY_BUDGET_MB, %d MiB) was held by %d runners and templates (%d MiB), and the run needed %d MiB "+
			"(RUNNER_MEMORY_MB, or what the script's forked runners were measured to use)", b.total>>20, holders, used>>20, ceilMiB(n)))
	return nil, &r, nil
}

// tryAcquire charges n bytes if they are free now, without waiting (nor passing a waiter).
func (b *memoryBudget) tryAcquire(n int64) (release func(), ok bool) {
	if b == nil {
		return func() {}, true
	}
	n = b.clamp(n)
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.waiters) > 0 || b.used+n > b.total {
		return nil, false
	}
	b.used += n
	b.holders++
	b.changed()
	return b.releaser(n), true
}

// clamp is what a charge of n bytes takes: at least a byte, at most the whole budget (such a run runs
// alone).
func (b *memoryBudget) clamp(n int64) int64 {
	if b == nil {
		return n
	}
	return max(min(n, b.total), 1)
}

// waiting reports whether a charge waits for memory.
func (b *memoryBudget) waiting() bool {
	if b == nil {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiters) > 0
}

// queued is the bytes the waiters wait for (b.mu held).
func (b *memoryBudget) queued() int64 {
	var n int64
	for _, w := range b.waiters {
		n += w.n
	}
	return n
}

// resize changes what a holder holds by delta bytes: more at once (even past the budget), or less, given to
// the waiters.
func (b *memoryBudget) resize(delta int64) {
	if b == nil || delta == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used += delta
	b.grant() // reports the change too
}

// reserve charges n bytes at once, even past the budget (the memory is in use already: a template's),
// so that runs wait until it is released. It returns the release.
func (b *memoryBudget) reserve(n int64) (release func()) {
	if b == nil || n <= 0 {
		return func() {}
	}
	n = b.clamp(n)
	b.mu.Lock()
	b.used += n
	b.holders++
	b.changed()
	b.mu.Unlock()
	return b.releaser(n)
}

// releaser returns the release of a charge of n bytes: safe to call more than once.
func (b *memoryBudget) releaser(n int64) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			b.used -= n
			b.holders--
			b.grant()
			b.mu.Unlock()
		})
	}
}

// changed reports the budget's state (b.mu held).
func (b *memoryBudget) changed() {
	if b.report != nil {
		b.report(b.total, b.used, len(b.waiters))
	}
}

// grant gives the waiters at the head of the queue their charges while they fit, and reports the budget's
// state (b.mu held).
func (b *memoryBudget) grant() {
	for len(b.waiters) > 0 && b.used+b.waiters[0].n <= b.total {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.used += w.n
		b.holders++
		close(w.ready)
	}
	b.changed()
}

// inUse reports the bytes charged and the runs and templates holding them.
func (b *memoryBudget) inUse() (bytes int64, holders int) {
	if b == nil {
		return 0, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used, b.holders
}

func ceilMiB(n int64) int64 { return (n + 1<<20 - 1) >> 20 }

// forkCharge is what a runner forked from a template is charged, given the largest private memory
// measured of the template's children after a call (0: none measured yet, so fallback, RUNNER_MEMORY_MB).
func forkCharge(measured, fallback int64) int64 {
	if measured <= 0 {
		return fallback
	}
	return max(measured+measured/forkChargeMargin, minForkCharge)
}

// DefaultMemoryBudget is WORKER_MEMORY_BUDGET_MB's default: three quarters of the memory the worker may use
// (its cgroup's limit, else the machine's total).
func DefaultMemoryBudget() int64 {
	var s sysstat.Sampler
	total := s.MemoryLimit()
	return total / 4 * 3
}
