package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/sysstat"
)

// DefaultRunnerMemoryBytes is RUNNER_MEMORY_MB's default: what one blocking run's Python process is
// budgeted. Measured on this platform's runner: an idle interpreter with runner.py is 14 MB resident
// (RssAnon 7 MB); a script importing urllib, json and a parser such as bs4 is 25–40 MB while it works.
const DefaultRunnerMemoryBytes = 40 << 20

// processBudget bounds the blocking runs (def scrape: a cold run or a one-call warm runner) in progress at
// once: each holds a process of its own, so as many run as the memory budget allows (issue 12), not as
// many as there are CPUs. Async scripts share a runner and are not counted here.
type processBudget struct{ slots chan struct{} }

func newProcessBudget(n int) *processBudget {
	if n <= 0 {
		return nil // no bound
	}
	return &processBudget{slots: make(chan struct{}, n)}
}

// acquire waits for a process slot until ctx ends or until deadline, whichever comes first. It returns
// the release, or a timeout Result when none became free in time.
func (b *processBudget) acquire(ctx context.Context, deadline time.Time, start time.Time) (release func(), res *Result, err error) {
	if b == nil {
		return func() {}, nil, nil
	}
	select {
	case b.slots <- struct{}{}:
		return func() { <-b.slots }, nil, nil
	default:
	}
	wait, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	select {
	case b.slots <- struct{}{}:
		return func() { <-b.slots }, nil, nil
	case <-wait.Done():
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		r := failure(Result{Duration: time.Since(start)}, contract.StatusTimeout, contract.CodeScriptTimeout,
			fmt.Sprintf("no process for this blocking (def scrape) run became free before its timeout: all %d the worker's memory budget allows (WORKER_MEMORY_BUDGET_MB / RUNNER_MEMORY_MB) were busy", cap(b.slots)))
		return nil, &r, nil
	}
}

// DefaultMemoryBudget is WORKER_MEMORY_BUDGET_MB's default: three quarters of the memory the worker may use
// (its cgroup's limit, else the machine's total).
func DefaultMemoryBudget() int64 {
	var s sysstat.Sampler
	total := s.MemoryLimit()
	return total / 4 * 3
}
