package runner

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/testlog"
)

// sharedJob is a call of the async_shared fixture with params built from kv.
func sharedJob(t *testing.T, id string, kv map[string]any) Job {
	t.Helper()
	return warmFixtureJob(t, "async_shared", id, kv)
}

// warmFixtureJob is a warm call, request id, of the fixture script with params built from kv.
func warmFixtureJob(t *testing.T, script, id string, kv map[string]any) Job {
	t.Helper()
	params, err := json.Marshal(kv)
	if err != nil {
		t.Fatal(err)
	}
	j := job(t, script, string(params), 30*time.Second)
	j.Warm, j.Version, j.RequestID = true, "v1", id
	return j
}

// sharedPID is the runner pid a completed call of async_shared reports.
func sharedPID(t *testing.T, res Result) int {
	t.Helper()
	if res.Status != contract.StatusCompleted {
		t.Fatalf("call did not complete: %s %+v", res.Status, res.Err)
	}
	var a struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(res.Data, &a); err != nil || a.PID == 0 {
		t.Fatalf("answer %s: %v", res.Data, err)
	}
	return a.PID
}

type outcome2 struct {
	res Result
	err error
}

// goRun runs j in the background.
func goRun(ctx context.Context, r *Runner, j Job) <-chan outcome2 {
	ch := make(chan outcome2, 1)
	go func() {
		res, err := r.Run(ctx, j)
		ch <- outcome2{res, err}
	}()
	return ch
}

func mustGet(t *testing.T, ch <-chan outcome2) Result {
	t.Helper()
	o := <-ch
	if o.err != nil {
		t.Fatalf("Run: %v", o.err)
	}
	return o.res
}

// waitInFlight waits until n calls are in flight on r's shared runners.
func waitInFlight(t *testing.T, r *Runner, n int) {
	t.Helper()
	end := time.Now().Add(20 * time.Second)
	for {
		r.warm.mu.Lock()
		live := 0
		for w := range r.warm.sharedAll {
			live += w.shared.live
		}
		r.warm.mu.Unlock()
		if live >= n {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%d calls in flight, want %d", live, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Two calls of one async script run at once in one runner: each waits for the file the other creates, so
// neither could finish alone.
func TestSharedRunnerCallsOverlapInOneProcess(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	dir := t.TempDir()
	fa, fb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	a := goRun(t.Context(), r, sharedJob(t, "call-a", map[string]any{"create": fa, "wait_for": fb}))
	b := goRun(t.Context(), r, sharedJob(t, "call-b", map[string]any{"create": fb, "wait_for": fa}))
	pa, pb := sharedPID(t, mustGet(t, a)), sharedPID(t, mustGet(t, b))
	if pa != pb {
		t.Fatalf("the calls ran in processes %d and %d; want one shared runner", pa, pb)
	}
	if s := r.WarmStats(); s.Started != 1 || s.Shared != 1 || s.Idle != 0 {
		t.Fatalf("stats %+v", s)
	}
	// The next call reuses it.
	if p := sharedPID(t, mustRun(t, r, sharedJob(t, "call-c", nil))); p != pa {
		t.Fatalf("a later call ran in %d, not the shared runner %d", p, pa)
	}
}

// A call past its own timeout is cancelled; the other call of the same runner goes on and completes.
func TestSharedRunnerTimeoutCancelsOnlyThatCall(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	gate := filepath.Join(t.TempDir(), "gate")
	other := goRun(t.Context(), r, sharedJob(t, "waits", map[string]any{"wait_for": gate}))
	waitInFlight(t, r, 1)
	late := sharedJob(t, "late", map[string]any{"sleep": 60})
	late.Timeout = time.Second
	res := mustRun(t, r, late)
	if res.Status != contract.StatusTimeout || res.Err.Code != contract.CodeScriptTimeout ||
		!strings.Contains(res.Err.Message, "coroutine was cancelled") {
		t.Fatalf("the late call: %s %+v", res.Status, res.Err)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pid := sharedPID(t, mustGet(t, other))
	if p := sharedPID(t, mustRun(t, r, sharedJob(t, "after", nil))); p != pid {
		t.Fatalf("the runner was replaced after a call timed out: %d, then %d", pid, p)
	}
	if s := r.WarmStats(); s.Started != 1 || s.Recycled != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// recordingHandler keeps the script output lines it is given, with their request_id.
type recordingHandler struct {
	mu    *sync.Mutex
	lines *[][2]string // request_id, line
	attrs []slog.Attr
	next  slog.Handler
}

func (h recordingHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h recordingHandler) Handle(ctx context.Context, rec slog.Record) error {
	var id, line string
	for _, a := range h.attrs {
		if a.Key == "request_id" {
			id = a.Value.String()
		}
	}
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "line" {
			line = a.Value.String()
		}
		return true
	})
	if rec.Message == "script output" {
		h.mu.Lock()
		*h.lines = append(*h.lines, [2]string{id, line})
		h.mu.Unlock()
	}
	return h.next.Handle(ctx, rec)
}

func (h recordingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	h.next = h.next.WithAttrs(attrs)
	return h
}

func (h recordingHandler) WithGroup(name string) slog.Handler {
	h.next = h.next.WithGroup(name)
	return h
}

// callKind is a kind of shared runner under test: how to make a call of its fixture (async_shared, or
// threads_shared in a threads runner) and read the runner pid a completed call answers.
type callKind struct {
	job func(t *testing.T, id string, kv map[string]any) Job
	pid func(t *testing.T, res Result) int
}

var (
	asyncCalls  = callKind{job: sharedJob, pid: sharedPID}
	threadCalls = callKind{job: threadsJob, pid: func(t *testing.T, res Result) int { p, _ := threadsAnswer(t, res); return p }}
)

// Two concurrent calls print and log; every line is logged with the request_id of the call that wrote it,
// and each call's output tail holds its own lines only.
func TestSharedRunnerAttributesOutputPerCall(t *testing.T) {
	t.Parallel()
	checkOutputPerCall(t, asyncCalls)
}

func checkOutputPerCall(t *testing.T, k callKind) {
	var mu sync.Mutex
	var lines [][2]string
	h := recordingHandler{mu: &mu, lines: &lines, next: testlog.New(t, slog.LevelDebug).Handler()}
	r := newTestRunner(t, func(c *Config) { c.Logger = slog.New(h) })
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	dir := t.TempDir()
	fa, fb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	a := goRun(t.Context(), r, k.job(t, "req-a", map[string]any{"create": fa, "wait_for": fb, "print": "from-a", "raise": true}))
	b := goRun(t.Context(), r, k.job(t, "req-b", map[string]any{"create": fb, "wait_for": fa, "print": "from-b", "raise": true}))
	ra, rb := mustGet(t, a), mustGet(t, b)
	for _, c := range []struct {
		res       Result
		own, not  string
		requestID string
	}{{ra, "from-a", "from-b", "req-a"}, {rb, "from-b", "from-a", "req-b"}} {
		if c.res.Err == nil || c.res.Err.Type != "ValueError" {
			t.Fatalf("%s: %+v", c.requestID, c.res.Err)
		}
		if !strings.Contains(c.res.OutputTail, c.own) || !strings.Contains(c.res.OutputTail, "logged "+c.own) ||
			strings.Contains(c.res.OutputTail, c.not) {
			t.Errorf("%s: output tail %q", c.requestID, c.res.OutputTail)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	seen := map[string]int{}
	for _, l := range lines {
		for _, tag := range []string{"from-a", "from-b"} {
			if strings.Contains(l[1], tag) {
				seen[tag]++
				if want := "req-" + tag[len(tag)-1:]; l[0] != want {
					t.Errorf("line %q logged with request_id %q, want %q", l[1], l[0], want)
				}
			}
		}
		if strings.ContainsAny(l[1], "\x1d\x1e\x1f") {
			t.Errorf("a call tag leaked into the log: %q", l[1])
		}
	}
	if seen["from-a"] < 2 || seen["from-b"] < 2 { // print and logging, each
		t.Errorf("lines seen %v in %q", seen, lines)
	}
}

// A call that blocks the event loop gets its runner stopped: every call on that runner fails with
// event_loop_blocked, while another script's runner serves on.
func TestSharedRunnerLoopBlockerIsStopped(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, func(c *Config) { c.Warm.LoopLagLimit = time.Second })
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	never := filepath.Join(t.TempDir(), "never")
	victim := goRun(t.Context(), r, sharedJob(t, "victim", map[string]any{"wait_for": never}))
	waitInFlight(t, r, 1)
	// Another script (the same files under another content key) in its own runner, in flight meanwhile.
	bystanderJob := sharedJob(t, "bystander", map[string]any{"sleep": 0.2})
	bystanderJob.ScriptName, bystanderJob.Content = "async_shared_other", "other"
	bystander := goRun(t.Context(), r, bystanderJob)
	waitInFlight(t, r, 2)

	blocker := mustRun(t, r, sharedJob(t, "blocker", map[string]any{"block": 60}))
	for name, res := range map[string]Result{"blocker": blocker, "victim": mustGet(t, victim)} {
		if res.Status != contract.StatusFailed || res.Err.Code != contract.CodeEventLoopBlocked ||
			!strings.Contains(res.Err.Message, "event loop") {
			t.Errorf("%s: %s %+v", name, res.Status, res.Err)
		}
	}
	sharedPID(t, mustGet(t, bystander))
	// The script's next call gets a fresh runner.
	sharedPID(t, mustRun(t, r, sharedJob(t, "next", nil)))
}

// pipeWriters finds the processes other than this one that hold the write end of the pipe whose read end
// is f: (pid, fd) pairs.
func pipeWriters(t *testing.T, f *os.File) [][2]int {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("pipe:[%d]", st.Ino)
	var found [][2]int
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	self := fmt.Sprintf("/proc/%d/", os.Getpid())
	for _, p := range procs {
		if strings.HasPrefix(p, self) {
			continue
		}
		if link, err := os.Readlink(p); err == nil && link == want {
			var pid, fd int
			if _, err := fmt.Sscanf(p, "/proc/%d/fd/%d", &pid, &fd); err == nil {
				found = append(found, [2]int{pid, fd})
			}
		}
	}
	return found
}

// A frame written into a shared runner's answer pipe through /proc/<pid>/fd by another process (issue 11)
// carries no nonce of a call in flight: the runner is stopped, the call in flight fails rather than
// receiving the forged data, and the next call gets a fresh runner.
func TestSharedRunnerForgedFrameRetiresTheRunner(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	victim := goRun(t.Context(), r, sharedJob(t, "victim", map[string]any{"wait_for": filepath.Join(t.TempDir(), "never")}))
	waitInFlight(t, r, 1)
	r.warm.mu.Lock()
	var w *warmProc
	for x := range r.warm.sharedAll {
		w = x
	}
	r.warm.mu.Unlock()
	writers := pipeWriters(t, w.resF)
	if len(writers) == 0 {
		t.Fatal("no process holds the runner's answer pipe")
	}
	if err := forgeAnswer(writers[0][0], writers[0][1]); err != nil {
		t.Fatal(err)
	}
	res := mustGet(t, victim)
	if res.Status != contract.StatusFailed || res.Err.Code != contract.CodeScriptCrashed || !strings.Contains(res.Err.Message, "forged") {
		t.Fatalf("the call in flight: %s %+v %s", res.Status, res.Err, res.Data)
	}
	<-w.exited
	sharedPID(t, mustRun(t, r, sharedJob(t, "next", nil)))
	if s := r.WarmStats(); s.Started != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// 200 concurrent calls of an async script all complete, in one runner.
func TestSharedRunnerServes200ConcurrentCalls(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	const n = 200
	gate := filepath.Join(t.TempDir(), "gate")
	var chans []<-chan outcome2
	for i := range n {
		chans = append(chans, goRun(t.Context(), r, sharedJob(t, fmt.Sprintf("call-%d", i), map[string]any{"wait_for": gate})))
	}
	waitInFlight(t, r, n) // all at once, before any can finish
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pids := map[int]int{}
	for _, ch := range chans {
		pids[sharedPID(t, mustGet(t, ch))]++
	}
	if len(pids) != 1 {
		t.Fatalf("calls per runner pid: %v", pids)
	}
	if s := r.WarmStats(); s.Started != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// Past MaxCalls concurrent calls, a second runner of the script starts.
func TestSharedRunnerMaxCalls(t *testing.T) {
	t.Parallel()
	checkSecondRunnerPastTheBound(t, asyncCalls, func(c *Config) { c.Warm.MaxCalls = 2 })
}

// checkSecondRunnerPastTheBound runs 4 calls at once on a runner whose edit bounds its calls at 2: they take
// 2 runners, 2 calls each.
func checkSecondRunnerPastTheBound(t *testing.T, k callKind, edit func(*Config)) {
	r := newTestRunner(t, edit)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	gate := filepath.Join(t.TempDir(), "gate")
	var chans []<-chan outcome2
	for i := range 4 {
		chans = append(chans, goRun(t.Context(), r, k.job(t, fmt.Sprintf("call-%d", i), map[string]any{"wait_for": gate})))
	}
	waitInFlight(t, r, 4)
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pids := map[int]int{}
	for _, ch := range chans {
		pids[k.pid(t, mustGet(t, ch))]++
	}
	if len(pids) != 2 || r.WarmStats().Started != 2 {
		t.Fatalf("calls per runner pid: %v, stats %+v", pids, r.WarmStats())
	}
	for pid, n := range pids {
		if n != 2 {
			t.Fatalf("runner %d served %d calls at once, more than its bound of 2", pid, n)
		}
	}
}

// The caller's ctx cancels its call only; Shutdown lets the calls in flight finish, then stops the runner.
func TestSharedRunnerCancelAndShutdownDrain(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	gate := filepath.Join(t.TempDir(), "gate")
	ctx, cancel := context.WithCancel(t.Context())
	cancelled := goRun(ctx, r, sharedJob(t, "cancelled", map[string]any{"wait_for": filepath.Join(t.TempDir(), "never")}))
	kept := goRun(t.Context(), r, sharedJob(t, "kept", map[string]any{"wait_for": gate}))
	waitInFlight(t, r, 2)
	cancel()
	if o := <-cancelled; !errors.Is(o.err, context.Canceled) {
		t.Fatalf("cancelled call: %v %+v", o.err, o.res)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- r.Shutdown(context.Background()) }()
	// Shutdown cannot end while a call is in flight: the runner serves it to its end.
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pid := sharedPID(t, mustGet(t, kept))
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	if s := r.WarmStats(); s.Started != 1 || s.Shared != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// A shared runner past its RSS bound is recycled between calls: the call in flight completes, the next call
// gets a fresh runner.
func TestSharedRunnerRecycledPastItsRSSBound(t *testing.T) {
	t.Parallel()
	// Heartbeats every 250 ms: one comes while the first call sleeps.
	r := newTestRunner(t, func(c *Config) { c.Warm.MaxRSSBytes = 1 << 20; c.Warm.LoopLagLimit = time.Second })
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	first := sharedPID(t, mustRun(t, r, sharedJob(t, "first", map[string]any{"sleep": 1.2})))
	waitGone(t, first)
	if second := sharedPID(t, mustRun(t, r, sharedJob(t, "second", nil))); second == first {
		t.Fatal("the runner past its RSS bound took another call")
	}
}

// Runners are kept per script content: calls of a changed script never share the old one's process.
func TestSharedRunnerPerContent(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	j := sharedJob(t, "a", nil)
	j.Content = "files-a"
	a := sharedPID(t, mustRun(t, r, j))
	j = sharedJob(t, "b", nil)
	j.Content = "files-b"
	if b := sharedPID(t, mustRun(t, r, j)); b == a {
		t.Fatal("a new content reused the old content's shared runner")
	}
	waitGone(t, a) // the old content's idle runner is retired
}

// forgeAnswer writes a frame with a random nonce into the pipe at /proc/<pid>/fd/<fd>, as a process that is
// not the runner could.
func forgeAnswer(pid, fd int) error {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/%d", pid, fd), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	body := append([]byte(newNonce()), `{"ok":true,"data":{"forged":true}}`...)
	_, err = f.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...))
	return err
}

// The same holds for a one-call-at-a-time runner (a def scrape): a frame forged into its answer pipe while
// a request runs does not become that request's answer; the runner is stopped.
func TestWarmRunnerForgedFrameRetiresTheRunner(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	_, a := runWarm(t, r, warmJob(t, `{}`, 1))
	victim := goRun(t.Context(), r, warmJob(t, `{"sleep":30}`, 2))
	for r.WarmStats().Reused == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	// The runner's answer pipe: a write-only pipe descriptor other than stdout and stderr whose read end
	// this process holds.
	ours := map[string]bool{}
	mine, _ := filepath.Glob("/proc/self/fd/*")
	for _, p := range mine {
		if link, err := os.Readlink(p); err == nil && strings.HasPrefix(link, "pipe:") {
			ours[link] = true
		}
	}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", a.PID))
	forged := false
	for _, p := range fds {
		var fd int
		if _, err := fmt.Sscanf(filepath.Base(p), "%d", &fd); err != nil || fd <= 2 {
			continue
		}
		link, err := os.Readlink(p)
		if err != nil || !ours[link] {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%d", a.PID, fd))
		var flags int
		for line := range strings.Lines(string(info)) {
			if v, ok := strings.CutPrefix(line, "flags:"); ok {
				_, _ = fmt.Sscanf(strings.TrimSpace(v), "%o", &flags)
			}
		}
		if err == nil && flags&3 == syscall.O_WRONLY {
			// Once the frame has stopped the runner, its other pipes are gone: later writes may fail.
			if err := forgeAnswer(a.PID, fd); err == nil {
				forged = true
			} else {
				t.Logf("forge into fd %d: %v", fd, err)
			}
		}
	}
	if !forged {
		t.Fatal("no answer pipe found in the runner")
	}
	res := mustGet(t, victim)
	if res.Status != contract.StatusFailed || res.Err.Code != contract.CodeScriptCrashed || !strings.Contains(res.Err.Message, "forged") {
		t.Fatalf("the request in flight: %s %+v %s", res.Status, res.Err, res.Data)
	}
	waitGone(t, a.PID)
}

// A shared runner near its MaxRequests starts its successor in the background, so that no call waits for
// an interpreter to start when it retires: over 25 calls with MaxRequests 4, only the first call started
// a runner itself; every later runner was started ahead of need, and each call ran in a live runner.
func TestSharedRunnerSucceededBeforeItRetires(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, func(c *Config) { c.Warm = WarmConfig{MaxRequests: 4} })
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	pids := map[int]int{}
	for i := range 25 {
		pids[sharedPID(t, mustRun(t, r, sharedJob(t, fmt.Sprintf("call-%d", i), nil)))]++
		if i%4 == 2 {
			// The successor, started after the third call of a runner, is up before its fourth: wait
			// for it as a steady stream of calls would give it time to.
			end := time.Now().Add(20 * time.Second)
			for s := r.WarmStats(); s.Prestarted < int64(i/4+1); s = r.WarmStats() {
				if time.Now().After(end) {
					t.Fatalf("after call %d no successor started: %+v", i, s)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	s := r.WarmStats()
	if s.Started != s.Prestarted+1 {
		t.Errorf("stats %+v: want every runner but the first started ahead of need", s)
	}
	if len(pids) < 6 {
		t.Errorf("calls ran in %d runners, want one per 4 calls: %v", len(pids), pids)
	}
	for pid, n := range pids {
		if n > 4 {
			t.Errorf("runner %d served %d calls, past MaxRequests 4", pid, n)
		}
	}
}
