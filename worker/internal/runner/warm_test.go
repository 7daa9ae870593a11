package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
)

type warmAnswer struct {
	PID       int    `json:"pid"`
	Calls     int    `json:"calls"`
	Loads     int    `json:"loads"`
	RequestID string `json:"request_id"`
}

func warmJob(t *testing.T, params string, id int) Job {
	j := job(t, "warm_state", params, 5*time.Second)
	j.Warm = true
	j.Version = "v1"
	j.RequestID = fmt.Sprintf("warm-%d", id)
	return j
}

func runWarm(t *testing.T, r *Runner, j Job) (Result, warmAnswer) {
	t.Helper()
	res := mustRun(t, r, j)
	var a warmAnswer
	if res.Status == contract.StatusCompleted {
		if err := json.Unmarshal(res.Data, &a); err != nil {
			t.Fatal(err)
		}
	}
	return res, a
}

func TestWarmRunnerServesManyRequestsFromOneImport(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	_, first := runWarm(t, r, warmJob(t, `{}`, 1))
	_, second := runWarm(t, r, warmJob(t, `{"print":"hello from request 2"}`, 2))
	if first.PID == 0 || second.PID != first.PID {
		t.Fatalf("requests ran in processes %d and %d; want one warm process", first.PID, second.PID)
	}
	if second.Calls != 2 || second.Loads != 1 {
		t.Fatalf("calls=%d loads=%d; the script must be imported once and called twice", second.Calls, second.Loads)
	}
	if second.RequestID != "warm-2" {
		t.Fatalf("the script sees SCRAPER_REQUEST_ID=%q", second.RequestID)
	}
	if s := r.WarmStats(); s.Started != 1 || s.Reused != 1 || s.Idle != 1 {
		t.Fatalf("stats %+v", s)
	}
	// The admission controller takes the starts once: the start, then none.
	if a, b := r.TakeWarmStarts(), r.TakeWarmStarts(); a != 1 || b != 0 {
		t.Fatalf("TakeWarmStarts gave %d then %d, want 1 then 0", a, b)
	}
	if !isLive(first.PID) {
		t.Fatal("idle warm runner is not alive")
	}
	if err := r.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitGone(t, first.PID)
}

func TestWarmRunnerOutputIsAttributedToItsRequest(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	runWarm(t, r, warmJob(t, `{}`, 1))
	res := mustRun(t, r, warmJob(t, `{"print":"line of request two","raise":true}`, 2))
	if res.Err == nil || !strings.Contains(res.Err.Detail, "line of request two") {
		t.Fatalf("the failing request's output tail does not hold its own line: %+v", res.Err)
	}
}

func TestWarmRunnerIsRecycledAfterFailureAndTimeout(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	_, a := runWarm(t, r, warmJob(t, `{}`, 1))
	res, _ := runWarm(t, r, warmJob(t, `{"raise":true}`, 2))
	if res.Status != contract.StatusFailed || res.Err.Type != "ValueError" {
		t.Fatalf("raise: %+v", res)
	}
	waitGone(t, a.PID) // a runner that failed is not reused
	_, b := runWarm(t, r, warmJob(t, `{}`, 3))
	if b.PID == a.PID || b.Loads != 1 || b.Calls != 1 {
		t.Fatalf("after a failure a fresh runner must serve: %+v vs pid %d", b, a.PID)
	}

	j := warmJob(t, `{"sleep":30}`, 4)
	j.Timeout = 300 * time.Millisecond
	res, _ = runWarm(t, r, j)
	if res.Status != contract.StatusTimeout || res.Err.Code != contract.CodeScriptTimeout {
		t.Fatalf("timeout: %+v", res)
	}
	waitGone(t, b.PID) // a timed-out runner is killed with its group, never reused
	_, c := runWarm(t, r, warmJob(t, `{}`, 5))
	if c.PID == b.PID || c.Calls != 1 {
		t.Fatalf("after a timeout a fresh runner must serve: %+v", c)
	}
}

func TestWarmRunnerLimitsAndVersions(t *testing.T) {
	t.Parallel()
	// An idle timeout far beyond any pause between two requests, so only the limits under test end a runner
	// (TestWarmRunnerIdleTimeout covers the idle timeout).
	r := newTestRunner(t, func(c *Config) { c.Warm = WarmConfig{MaxRequests: 2, IdleTimeout: 10 * time.Minute} })
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	_, a1 := runWarm(t, r, warmJob(t, `{}`, 1))
	_, a2 := runWarm(t, r, warmJob(t, `{}`, 2))
	if a2.PID != a1.PID {
		t.Fatal("second request not served warm")
	}
	waitGone(t, a1.PID) // MaxRequests reached
	_, b := runWarm(t, r, warmJob(t, `{}`, 3))
	j := warmJob(t, `{}`, 4)
	j.Version = "v2"
	_, c := runWarm(t, r, j)
	if c.PID == b.PID {
		t.Fatal("a new script version reused the old version's runner")
	}
	waitGone(t, b.PID) // the old version's idle runner is discarded

	// A new version with the same files (a git commit elsewhere in the repository, an identical upload)
	// keeps its runner: runners are kept per content.
	j = warmJob(t, `{}`, 5)
	j.Version, j.Content = "git:c1:tree", "files-a"
	_, d := runWarm(t, r, j)
	j = warmJob(t, `{}`, 6)
	j.Version, j.Content = "git:c2:tree", "files-a"
	_, e := runWarm(t, r, j)
	if e.PID != d.PID {
		t.Fatal("a new version with the same content did not reuse the warm runner")
	}
	j = warmJob(t, `{}`, 7)
	j.Version, j.Content = "git:c3:tree2", "files-b"
	if _, f := runWarm(t, r, j); f.PID == d.PID {
		t.Fatal("changed content reused the old content's runner")
	}
}

func TestWarmRunnerIdleTimeout(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, func(c *Config) { c.Warm = WarmConfig{IdleTimeout: 300 * time.Millisecond} })
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	_, a := runWarm(t, r, warmJob(t, `{}`, 1))
	if a.PID == 0 {
		t.Fatal("no warm runner answered")
	}
	// Nothing else ends the runner: no further request, no new version, the pool is not closed.
	deadline := time.Now().Add(20 * time.Second)
	for s := r.WarmStats(); s.Idle != 0 || s.Recycled != 1; s = r.WarmStats() {
		if time.Now().After(deadline) {
			t.Fatalf("the idle runner was not discarded after its idle timeout: %+v", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitGone(t, a.PID)
}

// Idle runners are reused most recently used first: after two overlapping calls started two runners, calls
// one at a time all go to the runner that answered last, and the other, left idle, is discarded after its
// idle timeout while the load goes on (reused in turn, neither would ever idle: a burst's runners would
// stay as long as any load).
func TestIdleRunnersAreReusedMostRecentFirst(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, func(c *Config) { c.Warm = WarmConfig{IdleTimeout: time.Second} })
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	var wg sync.WaitGroup
	answers := make([]warmAnswer, 2)
	for i := range answers {
		wg.Go(func() {
			_, answers[i] = runWarm(t, r, warmJob(t, fmt.Sprintf(`{"sleep":%.1f}`, 0.3+0.5*float64(i)), i))
		})
	}
	wg.Wait()
	first, last := answers[0].PID, answers[1].PID // the 0.8 s call answered last
	if first == 0 || last == 0 || first == last {
		t.Fatalf("overlapping calls ran in processes %d and %d; want two runners", first, last)
	}
	deadline := time.Now().Add(20 * time.Second)
	for n := 2; ; n++ {
		_, a := runWarm(t, r, warmJob(t, `{}`, n))
		if a.PID != last {
			t.Fatalf("call %d ran in %d; want %d, the runner used last (the other: %d)", n, a.PID, last, first)
		}
		if !isLive(first) {
			break // discarded for idleness while the other served
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runner left idle (%d) was never discarded: %+v", first, r.WarmStats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s := r.WarmStats(); s.Idle != 1 {
		t.Fatalf("stats %+v; want the one runner in use idle between calls", s)
	}
}

// A one-call-at-a-time runner past its RSS bound is replaced after the call that grew it: that call
// completes in it, the next runs in another; calls that leave it below the bound stay in it. In a PID
// namespace the runner is the namespace's init and its child serves: the bound is the child's.
func TestWarmRunnerRecycledPastItsRSSBound(t *testing.T) {
	t.Parallel()
	modes := []string{ContainSession}
	if probe(testPython(t), true, nil) == nil {
		modes = append(modes, ContainPIDNamespace)
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			r := newTestRunner(t, func(c *Config) { c.Containment = mode; c.Warm = WarmConfig{MaxRSSBytes: 64 << 20} })
			t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
			_, a := runWarm(t, r, warmJob(t, `{}`, 1))
			if _, b := runWarm(t, r, warmJob(t, `{"keep_mb":8}`, 2)); b.PID != a.PID || b.Calls != 2 {
				t.Fatalf("a call below the bound ran in %d (call %d); want %d's second call", b.PID, b.Calls, a.PID)
			}
			if _, c := runWarm(t, r, warmJob(t, `{"keep_mb":80}`, 3)); c.PID != a.PID || c.Calls != 3 {
				t.Fatalf("the call that grew the runner ran in %d (call %d); want %d's third call", c.PID, c.Calls, a.PID)
			}
			waitGone(t, a.PID)
			if _, d := runWarm(t, r, warmJob(t, `{}`, 4)); d.PID == a.PID || d.Calls != 1 {
				t.Fatalf("the next call ran in %d (call %d); want a new runner's first call", d.PID, d.Calls)
			}
			if s := r.WarmStats(); s.Recycled < 1 {
				t.Fatalf("stats %+v; want the runner counted as recycled", s)
			}
		})
	}
}

// A runner retired after MaxRequests is succeeded in the background: the next request finds a warm runner
// (started before it arrived) instead of paying for a start.
func TestRetiredRunnerIsSucceededInTheBackground(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, func(c *Config) { c.Warm = WarmConfig{MaxRequests: 2} })
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	_, a1 := runWarm(t, r, warmJob(t, `{}`, 1))
	runWarm(t, r, warmJob(t, `{}`, 2)) // the second and last request of a1
	waitGone(t, a1.PID)
	deadline := time.Now().Add(10 * time.Second)
	for s := r.WarmStats(); s.Prestarted != 1 || s.Idle != 1; s = r.WarmStats() {
		if time.Now().After(deadline) {
			t.Fatalf("no successor started in the background: %+v", s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := r.WarmStats()
	_, b := runWarm(t, r, warmJob(t, `{}`, 3))
	after := r.WarmStats()
	if b.PID == a1.PID || b.Calls != 1 || b.Loads != 1 || b.RequestID != "warm-3" {
		t.Fatalf("successor answered %+v", b)
	}
	if after.Started != before.Started || after.Reused != before.Reused+1 {
		t.Fatalf("the request after the retirement started a runner instead of using the successor: before %+v, after %+v", before, after)
	}
}

// A runner that failed is not succeeded in the background (the failure may be the script's import).
func TestFailedRunnerIsNotSucceeded(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	if res, _ := runWarm(t, r, warmJob(t, `{"raise":true}`, 1)); res.Status != contract.StatusFailed {
		t.Fatalf("status %s", res.Status)
	}
	_, b := runWarm(t, r, warmJob(t, `{}`, 2))
	time.Sleep(500 * time.Millisecond)
	if s := r.WarmStats(); s.Prestarted != 0 || s.Started != 2 || b.Loads != 1 || b.Calls != 1 {
		t.Fatalf("a failed runner was replaced in the background: %+v, then %+v", s, b)
	}
}

func TestWarmRunnerImportFailure(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	j := job(t, "warm_import_error", `{}`, 5*time.Second)
	j.Warm = true
	res := mustRun(t, r, j)
	if res.Status != contract.StatusFailed || res.Err.Code != contract.CodeScriptError || res.Err.Type != "RuntimeError" ||
		!strings.Contains(res.Err.Message, "missing configuration") {
		t.Fatalf("import failure: %+v", res.Err)
	}
	if s := r.WarmStats(); s.Idle != 0 {
		t.Fatalf("a runner that could not import its script is pooled: %+v", s)
	}
}

func TestWarmRunnerContextCancelled(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	_, a := runWarm(t, r, warmJob(t, `{}`, 1))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		// Cancel once the request has taken the idle runner (cancelled before, Run would not touch it).
		for ctx.Err() == nil && r.WarmStats().Reused == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		cancel()
	}()
	_, err := r.Run(ctx, warmJob(t, `{"sleep":30}`, 2))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	waitGone(t, a.PID)
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	end := time.Now().Add(5 * time.Second)
	for isLive(pid) {
		if time.Now().After(end) {
			t.Fatalf("process %d still alive", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// countingMetrics records the warm pool's Metrics calls.
type countingMetrics struct {
	mu                        sync.Mutex
	started, reused, recycled int
	idle                      int
	took                      []time.Duration // each start's duration
	// The memory budget's last report.
	budget, held int64
	waiting      int
}

func (m *countingMetrics) MemoryBudget(total, held int64, waiting int) {
	m.mu.Lock()
	m.budget, m.held, m.waiting = total, held, waiting
	m.mu.Unlock()
}

func (m *countingMetrics) lastBudget() (total, held int64, waiting int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.budget, m.held, m.waiting
}

func (m *countingMetrics) WarmStarted(took time.Duration) {
	m.mu.Lock()
	m.started++
	m.took = append(m.took, took)
	m.mu.Unlock()
}
func (m *countingMetrics) WarmReused()   { m.mu.Lock(); m.reused++; m.mu.Unlock() }
func (m *countingMetrics) WarmRecycled() { m.mu.Lock(); m.recycled++; m.mu.Unlock() }
func (m *countingMetrics) WarmIdle(n int) {
	m.mu.Lock()
	m.idle = n
	m.mu.Unlock()
}

// The pool's Metrics see what WarmStats counts, and Shutdown leaves no idle runner.
func TestWarmMetrics(t *testing.T) {
	t.Parallel()
	m := &countingMetrics{}
	r := newTestRunner(t, func(c *Config) { c.Metrics = m })
	before := time.Now()
	runWarm(t, r, warmJob(t, `{}`, 1))
	firstCall := time.Since(before)
	runWarm(t, r, warmJob(t, `{}`, 2))
	s := r.WarmStats()
	m.mu.Lock()
	got := [4]int{m.started, m.reused, m.recycled, m.idle}
	took := slices.Clone(m.took)
	m.mu.Unlock()
	if want := [4]int{int(s.Started), int(s.Reused), int(s.Recycled), s.Idle}; got != want || got[0] != 1 || got[1] != 1 {
		t.Fatalf("metrics %v, stats %v", got, want)
	}
	// The one start is measured, and within the call that waited for it.
	if len(took) != 1 || took[0] <= 0 || took[0] > firstCall {
		t.Fatalf("start durations %v, want one in (0, %v] (the first call's)", took, firstCall)
	}
	if err := r.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if m.idle != 0 || r.WarmStats().Idle != 0 {
		t.Fatalf("idle after Shutdown: %d", m.idle)
	}
}

// A call that finds no idle runner while every start slot is taken (a burst of calls of one script) does
// not start one more runner: it takes the first runner another call puts back.
func TestWaitingCallTakesARunnerPutBack(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	_, first := runWarm(t, r, warmJob(t, `{}`, 1))
	job := warmJob(t, `{}`, 2)
	held := r.warm.take(warmKey(r.python, job), job.ScriptName) // a call still running on it, as it were
	if held == nil {
		t.Fatal("the first call's runner is not idle")
	}
	for range cap(r.starts) { // every start slot busy with other scripts' starts, as it were
		r.starts <- struct{}{}
	}
	done := make(chan Result, 1)
	go func() { res, _ := r.Run(t.Context(), job); done <- res }()
	select {
	case res := <-done:
		t.Fatalf("the call ran (%s) with no idle runner and no start slot", res.Status)
	case <-time.After(300 * time.Millisecond):
	}
	r.warm.put(held)
	var res Result
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not take the runner put back")
	}
	for range cap(r.starts) {
		<-r.starts
	}
	var a warmAnswer
	if err := json.Unmarshal(res.Data, &a); err != nil || a.PID != first.PID {
		t.Fatalf("the call ran in %d (%s, %v), want the runner put back, %d", a.PID, res.Data, err, first.PID)
	}
	if s := r.WarmStats(); s.Started != 1 {
		t.Fatalf("stats %+v: want the one runner only", s)
	}
}

// A start still under way counts in every take (on a busy CPU a start can outlast an admission interval),
// and a finished one in the first take after it.
func TestTakeWarmStartsCountsStartsUnderWay(t *testing.T) {
	t.Parallel()
	dir := t.TempDir() // also the release file's folder: the script's folder is visible in the run
	script := "import os\nimport time\n\n_here = os.path.dirname(os.path.abspath(__file__))\n" +
		"while not os.path.exists(os.path.join(_here, 'release')):\n    time.sleep(0.01)\n\n\ndef scrape(params):\n    return 1\n"
	if err := os.WriteFile(filepath.Join(dir, "scraper.py"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newTestRunner(t, nil)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	done := make(chan Result, 1)
	go func() {
		res, err := r.Run(t.Context(), Job{RequestID: "slow-import", ScriptName: "slow_import", ScriptDir: dir,
			Timeout: time.Minute, Warm: true, Version: "v"})
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		done <- res
	}()
	for hang := time.Now().Add(time.Minute); r.TakeWarmStarts() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(hang) { // a hang guard, not a bound on speed
			t.Fatal("the start never counted while its import waited")
		}
	}
	if n := r.TakeWarmStarts(); n != 1 {
		t.Fatalf("TakeWarmStarts = %d again while the start is under way, want 1", n)
	}
	if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if res := <-done; res.Status != contract.StatusCompleted {
		t.Fatalf("the run: %+v %+v", res, res.Err)
	}
	if a, b := r.TakeWarmStarts(), r.TakeWarmStarts(); a != 1 || b != 0 {
		t.Fatalf("TakeWarmStarts gave %d then %d after the start, want 1 then 0", a, b)
	}
}
