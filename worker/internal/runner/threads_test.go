package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
)

// threadsJob is a call of the threads_shared fixture (a blocking def scrape) under "isolation": "threads",
// with params built from kv.
func threadsJob(t *testing.T, id string, kv map[string]any) Job {
	t.Helper()
	j := warmFixtureJob(t, "threads_shared", id, kv)
	j.Threads = true
	return j
}

// threadsAnswer is what a completed call of threads_shared reports: its runner's pid and its thread.
func threadsAnswer(t *testing.T, res Result) (pid int, thread string) {
	t.Helper()
	if res.Status != contract.StatusCompleted {
		t.Fatalf("call did not complete: %s %+v", res.Status, res.Err)
	}
	var a struct {
		PID    int    `json:"pid"`
		Thread string `json:"thread"`
	}
	if err := json.Unmarshal(res.Data, &a); err != nil || a.PID == 0 {
		t.Fatalf("answer %s: %v", res.Data, err)
	}
	return a.PID, a.Thread
}

// Two calls of one blocking def script run at once in one runner, each in a thread of its own: each waits
// (time.sleep) for the file the other creates, so neither could finish alone. Without "threads" the same
// script runs one call per process, as before.
func TestThreadsRunnerCallsOverlapInOneProcess(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	dir := t.TempDir()
	fa, fb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	a := goRun(t.Context(), r, threadsJob(t, "call-a", map[string]any{"create": fa, "wait_for": fb}))
	b := goRun(t.Context(), r, threadsJob(t, "call-b", map[string]any{"create": fb, "wait_for": fa}))
	pa, ta := threadsAnswer(t, mustGet(t, a))
	pb, tb := threadsAnswer(t, mustGet(t, b))
	if pa != pb || ta == tb || !strings.HasPrefix(ta, "scrape-call") {
		t.Fatalf("the calls ran in process %d thread %q and process %d thread %q; want one runner, two threads", pa, ta, pb, tb)
	}
	if s := r.WarmStats(); s.Started != 1 || s.Shared != 1 || s.Idle != 0 {
		t.Fatalf("stats %+v", s)
	}
	if p, _ := threadsAnswer(t, mustRun(t, r, threadsJob(t, "call-c", nil))); p != pa {
		t.Fatalf("a later call ran in %d, not the threads runner %d", p, pa)
	}
	plain := threadsJob(t, "plain", nil)
	plain.Threads = false
	if p, thread := threadsAnswer(t, mustRun(t, r, plain)); p == pa || thread != "MainThread" {
		t.Fatalf("without threads the call ran in process %d thread %q (the threads runner is %d)", p, thread, pa)
	}
}

// A call past its time budget cannot be stopped in its thread: it ends as a timeout whose detail shows where
// its thread was, the runner's other call completes, and then the runner is stopped; the next call gets a
// new one.
func TestThreadsRunnerTimeoutRetiresTheRunner(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	gate := filepath.Join(t.TempDir(), "gate")
	other := goRun(t.Context(), r, threadsJob(t, "waits", map[string]any{"wait_for": gate}))
	waitInFlight(t, r, 1)
	late := threadsJob(t, "late", map[string]any{"sleep": 60})
	late.Timeout = time.Second
	res := mustRun(t, r, late)
	if res.Status != contract.StatusTimeout || res.Err.Code != contract.CodeScriptTimeout ||
		!strings.Contains(res.Err.Message, "abandoned") || !strings.Contains(res.Err.Detail, "time.sleep(params[\"sleep\"])") {
		t.Fatalf("the late call: %s %+v", res.Status, res.Err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pid, _ := threadsAnswer(t, mustGet(t, other))
	waitGone(t, pid) // retired: stopped once its last waiting call ended, the sleeping thread with it
	if p, _ := threadsAnswer(t, mustRun(t, r, threadsJob(t, "after", nil))); p == pid {
		t.Fatalf("the runner with an abandoned thread took another call")
	}
	if s := r.WarmStats(); s.Started != 2 || s.Recycled != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// Two concurrent calls in threads print and log; every line is logged with the request_id of the call that
// wrote it, and each call's output tail holds its own lines only.
func TestThreadsRunnerAttributesOutputPerCall(t *testing.T) {
	t.Parallel()
	checkOutputPerCall(t, threadCalls)
}

// A call that keeps the interpreter lock (one long C call) stops every call of its threads runner: the
// runner is stopped and its calls fail with event_loop_blocked, naming the cause; the next call gets a
// fresh runner.
func TestThreadsRunnerGILHolderIsStopped(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, func(c *Config) { c.Warm.LoopLagLimit = time.Second })
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	victim := goRun(t.Context(), r, threadsJob(t, "victim", map[string]any{"wait_for": filepath.Join(t.TempDir(), "never")}))
	waitInFlight(t, r, 1)
	holder := mustRun(t, r, threadsJob(t, "holder", map[string]any{"hold_gil": 1e12}))
	for name, res := range map[string]Result{"holder": holder, "victim": mustGet(t, victim)} {
		if res.Status != contract.StatusFailed || res.Err.Code != contract.CodeEventLoopBlocked ||
			!strings.Contains(res.Err.Message, "held the interpreter") {
			t.Errorf("%s: %s %+v", name, res.Status, res.Err)
		}
	}
	threadsAnswer(t, mustRun(t, r, threadsJob(t, "next", nil)))
	if s := r.WarmStats(); s.Started != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// Past MaxThreads concurrent calls, a second threads runner of the script starts.
func TestThreadsRunnerMaxThreads(t *testing.T) {
	t.Parallel()
	checkSecondRunnerPastTheBound(t, threadCalls, func(c *Config) { c.Warm.MaxThreads = 2 })
}

// The caller's ctx cancels its call only; its thread cannot be stopped, so the runner is retired once the
// other call in flight has completed.
func TestThreadsRunnerCancelRetires(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	gate := filepath.Join(t.TempDir(), "gate")
	ctx, cancel := context.WithCancel(t.Context())
	cancelled := goRun(ctx, r, threadsJob(t, "cancelled", map[string]any{"wait_for": filepath.Join(t.TempDir(), "never")}))
	kept := goRun(t.Context(), r, threadsJob(t, "kept", map[string]any{"wait_for": gate}))
	waitInFlight(t, r, 2)
	cancel()
	if o := <-cancelled; !errors.Is(o.err, context.Canceled) {
		t.Fatalf("cancelled call: %v %+v", o.err, o.res)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pid, _ := threadsAnswer(t, mustGet(t, kept))
	waitGone(t, pid)
}

// A threads runner starts all its threads before it reports ready: a memory limit too small for them fails
// the call with a message that names both knobs, rather than failing calls later.
func TestThreadsRunnerTooManyThreadsForTheMemoryLimit(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, func(c *Config) { c.Warm.MaxThreads = 1024; c.Warm.MaxCalls = 1024 })
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	j := threadsJob(t, "small", nil)
	j.MemoryLimitBytes = 256 << 20 // 1,024 stacks of 2 MiB do not fit
	res, err := r.Run(t.Context(), j)
	msg := fmt.Sprint(err)
	if res.Err != nil {
		msg = res.Err.Message
	}
	if !strings.Contains(msg, "threads of a threads runner") || !strings.Contains(msg, "WARM_RUNNER_MAX_THREADS") {
		t.Fatalf("result %s %+v, error %v", res.Status, res.Err, err)
	}
	t.Log(msg)
}

// Shutdown lets the calls in flight on a threads runner finish (EOF: the runner answers them all before it
// exits), then stops the runner.
func TestThreadsRunnerShutdownDrains(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	gate := filepath.Join(t.TempDir(), "gate")
	var kept []<-chan outcome2
	for i := range 3 {
		kept = append(kept, goRun(t.Context(), r, threadsJob(t, fmt.Sprintf("kept-%d", i), map[string]any{"wait_for": gate})))
	}
	waitInFlight(t, r, 3)
	stopped := make(chan error, 1)
	go func() { stopped <- r.Shutdown(context.Background()) }()
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var pid int
	for _, ch := range kept {
		pid, _ = threadsAnswer(t, mustGet(t, ch))
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
}
