package runner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
)

// Warm runners: long-lived children that import a script once and serve requests framed over fds 4
// (requests) and 3 (answers). A runner of a plain `def scrape` serves one request at a time; a pool keeps
// idle ones per (script, content, interpreter, memory limit). A runner of an `async def scrape` is shared:
// it serves up to MaxCalls requests at once (shared.go). Every frame carries a nonce (the runner's, or the
// call's), so a frame forged by another process matches nothing and retires the runner. A one-at-a-time
// runner is discarded after a failure or a timeout (its process group is killed: never reused), after
// MaxRequests, after IdleTimeout without work, and when a newer version of its script runs. Runner.Shutdown
// kills the idle ones and drains the shared ones; the kernel kills them too if the worker dies (Pdeathsig).

// WarmConfig bounds the warm pool. Zero fields take the defaults.
type WarmConfig struct {
	// MaxRequests is how many requests one runner serves before it is replaced (DefaultWarmMaxRequests). A runner
	// retired for its age is succeeded in the background (replaceWarm).
	MaxRequests int
	// IdleTimeout is how long an idle runner is kept (default 60 s).
	IdleTimeout time.Duration
	// MaxIdle bounds idle runners across all scripts (default 8); the least recently used go first.
	MaxIdle int
	// MaxCalls bounds the calls one shared runner (an async def script's) serves at once (default 256); more
	// concurrent calls of the script start another runner.
	MaxCalls int
	// MaxThreads bounds the calls one threads runner (a def script's under "isolation": "threads") serves at
	// once, a thread each (default 64, at most MaxCalls); more concurrent calls start another runner.
	MaxThreads int
	// LoopLagLimit bounds how long a shared runner's event loop may be blocked (default 2 s): past it the
	// runner is stopped and its calls fail with contract.CodeEventLoopBlocked.
	LoopLagLimit time.Duration
	// MaxRSSBytes is the resident memory past which a warm runner is recycled: a shared runner (its
	// heartbeats report it) takes no new call and stops once its calls have ended; a one-call-at-a-time
	// runner (read from /proc after each call) is replaced like one past MaxRequests (default 512 MiB;
	// negative: no bound). RLIMIT_AS (MemoryLimitBytes) applies to the runner as a whole as well.
	MaxRSSBytes int64
	// NoFork starts every one-call-at-a-time runner afresh instead of forking it from its script's
	// template (fork.go).
	NoFork bool
}

// withDefaults returns c with every zero (or negative) field set to its default.
func (c WarmConfig) withDefaults() WarmConfig {
	if c.MaxRequests <= 0 {
		c.MaxRequests = DefaultWarmMaxRequests
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = time.Minute
	}
	if c.MaxIdle <= 0 {
		c.MaxIdle = 8
	}
	if c.MaxCalls <= 0 {
		c.MaxCalls = DefaultWarmMaxCalls
	}
	if c.MaxThreads <= 0 {
		c.MaxThreads = DefaultWarmMaxThreads
	}
	c.MaxThreads = min(c.MaxThreads, c.MaxCalls)
	if c.LoopLagLimit <= 0 {
		c.LoopLagLimit = DefaultWarmLoopLagLimit
	}
	if c.MaxRSSBytes == 0 {
		c.MaxRSSBytes = DefaultWarmMaxRSSBytes
	}
	return c
}

// WarmStats counts the pool's work, for metrics.
type WarmStats struct {
	Started, Reused, Recycled int64
	// Prestarted counts runners started in the background to succeed one retired after MaxRequests
	// (included in Started).
	Prestarted int64
	// Idle counts one-call-at-a-time runners waiting for a request; Shared the shared runners alive (async
	// def scripts), serving or not.
	Idle   int
	Shared int
}

type warmPool struct {
	cfg     WarmConfig
	metrics Metrics
	// stop ends the pool's background work (the idle reaper, successors starting); Shutdown cancels it.
	stop       context.Context
	cancelStop context.CancelFunc
	mu         sync.Mutex
	idle       []*warmProc // most recently used last
	closed     bool
	families   map[string]*family       // per warmKey: async or not, its shared runners (shared.go)
	templates  map[string]*templateSlot // per warmKey: the template one-call runners are forked from (fork.go)
	// forkFailures counts, per warmKey, forks that failed in a row (fork.go, maxForkFailures).
	forkFailures map[string]int
	sharedAll    map[*warmProc]struct{} // every shared runner until it has exited
	// forked holds every forked runner until its end is handled (its session swept, its folder removed):
	// Shutdown waits for them.
	forked map[*warmProc]struct{}
	// waitingFor counts, per warmKey, the calls waiting for memory for a new runner (waitCharge): an idle
	// runner of the key is theirs, not stopped to free memory.
	waitingFor map[string]int
	stats      WarmStats
	// startsTaken counts the starts since TakeWarmStarts last took them, startsUnderWay the starts not
	// finished yet (atomic: the taker holds no lock).
	startsTaken, startsUnderWay atomic.Int64
	gcOnce                      sync.Once
	bg                          sync.WaitGroup // the reaper and successors starting
	runner                      *Runner        // starts successors
}

func newWarmPool(cfg WarmConfig, m Metrics) *warmPool {
	stop, cancel := context.WithCancel(context.Background())
	return &warmPool{cfg: cfg, metrics: m, stop: stop, cancelStop: cancel, families: map[string]*family{},
		sharedAll: map[*warmProc]struct{}{}, templates: map[string]*templateSlot{}, forkFailures: map[string]int{},
		forked: map[*warmProc]struct{}{}, waitingFor: map[string]int{}}
}

// The counters below are called with p.mu held.

func (p *warmPool) started(w *warmProc, prestarted bool) {
	p.stats.Started++
	p.startsTaken.Add(1)
	if prestarted {
		p.stats.Prestarted++
	}
	p.metrics.WarmStarted(w.startTook)
	w.log.Debug("warm runner started", "pid", w.pid, "start_ms", w.startTook.Milliseconds(), "prestarted", prestarted)
}

// TakeWarmStarts returns how many warm runners (one-call-at-a-time, shared and threads alike) started since
// the previous call, plus those still starting (a start can outlast a sampling interval on a busy CPU), and
// starts a new period: the admission controller holds its capacity instead of cutting it while the CPU is
// busy starting runners (admission.Signals.RunnersStarted).
func (r *Runner) TakeWarmStarts() int {
	if r.warm == nil {
		return 0
	}
	return int(r.warm.startsTaken.Swap(0) + r.warm.startsUnderWay.Load())
}

func (p *warmPool) recycled() {
	p.stats.Recycled++
	p.metrics.WarmRecycled()
}

func (p *warmPool) setIdle(idle []*warmProc) {
	p.idle = idle
	p.metrics.WarmIdle(len(idle))
}

func warmKey(python string, job Job) string {
	content := job.Content
	if content == "" {
		content = job.Version
	}
	return python + "\x00" + job.ScriptDir + "\x00" + content + "\x00" + strconv.FormatInt(job.MemoryLimitBytes, 10) +
		"\x00" + strconv.Itoa(job.MaxResultBytes) + "\x00" + strconv.FormatBool(job.Threads) +
		"\x00" + job.ScriptName // with UIDRange the script's name picks its user
}

// take returns an idle runner for key, discarding idle runners of older versions of the same script.
func (p *warmPool) take(key, script string) *warmProc {
	p.mu.Lock()
	defer p.mu.Unlock()
	// The most recently used runner of the key: the others, left idle, are discarded after IdleTimeout once
	// demand falls. Taken in turn, every runner a burst started would stay as long as any call came.
	var found *warmProc
	for _, w := range slices.Backward(p.idle) {
		if w.key == key {
			found = w
			break
		}
	}
	kept := p.idle[:0]
	for _, w := range p.idle {
		switch {
		case w == found:
		case w.key != key && w.script == script:
			w.kill("a newer version of the script runs")
			p.recycled()
		default:
			kept = append(kept, w)
		}
	}
	p.setIdle(kept)
	if found != nil {
		p.stats.Reused++
		p.metrics.WarmReused()
	}
	return found
}

// put keeps w for reuse, or kills it when the pool is closed or full.
func (p *warmPool) put(w *warmProc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		w.kill("worker stopping")
		return
	}
	if w.async {
		w.kill("a shared runner is never pooled idle")
		return
	}
	if p.waitingFor[w.key] == 0 && p.runner != nil && p.runner.blocking.waiting() {
		w.kill("runs of other scripts wait for memory: its charge is worth more to them")
		p.recycled()
		return
	}
	w.lastUsed = time.Now()
	idle := append(p.idle, w)
	for len(idle) > p.cfg.MaxIdle {
		idle[0].kill("too many idle runners")
		p.recycled()
		idle = idle[1:]
	}
	p.setIdle(idle)
}

// evictIdle stops idle runners, least recently used first, until their charges cover missing bytes of the
// memory budget (memoryBudget.short): each gives its charge back once its process has ended. Runners of a
// script whose calls wait (waitCharge) are left to them.
func (p *warmPool) evictIdle(missing int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	kept := p.idle[:0]
	for _, w := range p.idle {
		if missing <= 0 || p.waitingFor[w.key] > 0 {
			kept = append(kept, w)
			continue
		}
		w.kill("runs wait for memory: the least recently used idle runner gives its charge back")
		p.recycled()
		missing -= w.charge()
	}
	p.setIdle(kept)
}

// reap kills runners idle for longer than IdleTimeout, and dead ones.
func (p *warmPool) reap() {
	p.mu.Lock()
	defer p.mu.Unlock()
	kept := p.idle[:0]
	for _, w := range p.idle {
		select {
		case <-w.exited:
			p.recycled()
			continue
		default:
		}
		if time.Since(w.lastUsed) > p.cfg.IdleTimeout {
			w.kill("idle")
			p.recycled()
			continue
		}
		kept = append(kept, w)
	}
	p.setIdle(kept)
	for _, w := range p.sharedProcs() {
		if w.shared.live == 0 && time.Since(w.lastUsed) > p.cfg.IdleTimeout {
			p.retire(w, "idle")
		}
	}
	p.reapTemplates()
}

// startGC starts the idle reaper, once, unless the pool is shut down.
func (p *warmPool) startGC() {
	p.gcOnce.Do(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed {
			return
		}
		p.bg.Go(func() {
			t := time.NewTicker(min(p.cfg.IdleTimeout/2, 5*time.Second))
			defer t.Stop()
			for {
				select {
				case <-t.C:
					p.reap()
				case <-p.stop.Done():
					return
				}
			}
		})
	})
}

// Shutdown stops the warm pool: it kills every idle warm runner, retires every shared runner (no new calls;
// each stops once the calls in flight on it have ended, or their callers' contexts cancelled them), stops
// the idle reaper and interrupts successors still starting, then waits until those runners have exited and
// the background work has ended, or ctx ends (it then returns ctx's error; idle runners are killed all the
// same, shared ones keep serving the calls in flight). Runs still in progress finish; their runners are
// killed afterwards, and later warm runs start and discard their own. Calling it again waits again.
func (r *Runner) Shutdown(ctx context.Context) error {
	p := r.warm
	p.mu.Lock()
	idle := p.idle
	if !p.closed {
		p.closed = true
		p.cancelStop()
		for _, w := range idle {
			w.kill("worker stopping") // not counted as recycled, as before
		}
		p.setIdle(nil)
		for _, w := range p.sharedProcs() {
			p.retireCounted(w, "worker stopping", false) // not counted as recycled, as idle ones
		}
		idle = append(idle, p.closeTemplates()...)
	}
	for w := range p.sharedAll {
		idle = append(idle, w)
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		for _, w := range idle {
			<-w.gone
		}
		p.bg.Wait()
		// The forked runners' ends (their sweeps and folders) are handled too; the successors started in
		// the background are among them.
		p.mu.Lock()
		forked := slices.Collect(maps.Keys(p.forked))
		p.mu.Unlock()
		for _, w := range forked {
			<-w.gone
		}
		close(done)
	}()
	select {
	case <-done:
		r.scratch.remove(r.cfg.Logger) // scratch.go
		return nil
	case <-ctx.Done():
		r.scratch.remove(r.cfg.Logger)
		return fmt.Errorf("runner shutdown: %w", ctx.Err())
	}
}

// WarmStats returns the pool's counters.
func (r *Runner) WarmStats() WarmStats {
	p := r.warm
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Idle = len(p.idle)
	for w := range p.sharedAll {
		select {
		case <-w.exited:
		default:
			s.Shared++
		}
	}
	return s
}

// warmProc is one warm runner process.
type warmProc struct {
	key, script string
	pid         int
	reqW        *os.File
	res         *bufio.Reader
	resF        *os.File
	runDir      string
	out         *outputRouter
	outR        []*os.File // stdout and stderr read ends
	consumers   sync.WaitGroup
	group       *group
	exited      chan struct{} // closed once the process has exited and been reaped
	gone        chan struct{} // closed once its end is handled: its folder removed (released)
	state       *os.ProcessState
	served      int
	lastUsed    time.Time
	killOnce    sync.Once
	log         *slog.Logger
	// nonce is the runner's own: its ready frame and heartbeats carry it.
	nonce string
	// async says the runner is shared (shared.go) and shared is set: its script's scrape is async def, or a
	// def run in threads (threads, Job.Threads).
	async     bool
	threads   bool
	shared    *sharedState
	retireWhy string
	// maxResult is the result limit the runner was started with (Job.MaxResultBytes, part of its key).
	maxResult int
	// start is what the runner was started for (the job without its request), so that a shared runner
	// near its end can start its successor; succeeded says it did.
	start     successorStart
	succeeded bool
	// rss reads a one-call runner's resident memory after each call (MaxRSSBytes).
	rss rssReader
	// startTook is how long the runner took to start: from spawning it (its containment included) to its
	// ready frame (the interpreter started and the script imported); for a forked one, the fork's.
	startTook time.Duration
	// tmpl is set on a template's own runner (fork.go); child on a runner forked from one.
	tmpl  *template
	child *forkedChild
	// measuredAt is a forked runner's resident memory when its private memory was last measured
	// (measureForked).
	measuredAt int64
	// A one-call runner's charge of the memory budget (budget.go), held from its start until it ends
	// (holdCharge, setCharge, dropCharge): charged bytes, of which the acquisition that release gives back
	// took acquired.
	chargeMu   sync.Mutex
	charged    int64
	acquired   int64
	release    func()
	budget     *memoryBudget
	chargeDone bool
}

// holdCharge makes w hold n bytes of budget b, taken by the acquisition whose release is given: w gives
// them back once its process has ended (released).
func (w *warmProc) holdCharge(b *memoryBudget, release func(), n int64) {
	w.chargeMu.Lock()
	defer w.chargeMu.Unlock()
	if w.chargeDone || w.release != nil {
		release()
		return
	}
	n = b.clamp(n) // what the acquisition took
	w.budget, w.release, w.charged, w.acquired = b, release, n, n
}

// setCharge makes w hold n bytes instead of what it holds: more (even past the budget: the memory is in
// use), or less (given back to the runs waiting for it).
func (w *warmProc) setCharge(n int64) {
	w.chargeMu.Lock()
	defer w.chargeMu.Unlock()
	if w.chargeDone || w.release == nil || n == w.charged {
		return
	}
	w.budget.resize(n - w.charged)
	w.charged = n
}

// charge is what w holds of the memory budget.
func (w *warmProc) charge() int64 {
	w.chargeMu.Lock()
	defer w.chargeMu.Unlock()
	return w.charged
}

// dropCharge gives back what w holds of the memory budget: its process has ended.
func (w *warmProc) dropCharge() {
	w.chargeMu.Lock()
	defer w.chargeMu.Unlock()
	if w.chargeDone {
		return
	}
	w.chargeDone = true
	if w.release != nil {
		w.budget.resize(w.acquired - w.charged) // back to what the acquisition took, which release gives back
		w.release()
	}
}

// successorStart is what starting another runner like one needs.
type successorStart struct {
	job    Job
	python string
}

func (w *warmProc) kill(why string) {
	w.killOnce.Do(func() {
		w.log.Debug("stopping warm runner", "reason", why, "pid", w.pid, "served", w.served)
		_ = w.group.cancel(w.pid, errors.New(why))
		_ = w.reqW.Close()
	})
}

// runWarm runs job on a warm runner: a shared one when the script is async (runShared), else an idle one,
// starting one if none is idle.
func (r *Runner) runWarm(ctx context.Context, job Job, python string, params []byte, log *slog.Logger) (Result, error) {
	r.warm.startGC()
	key := warmKey(python, job)
	deadline := time.Now().Add(job.Timeout) // the runner's start counts against the budget
	if res, err, ok := r.runShared(ctx, job, python, key, params, deadline, log); ok {
		return res, err
	}
	// A blocking script: one call per runner process, as many processes as the memory budget allows. A
	// runner holds its charge from its start to its end, idle or not: an idle one is already paid for.
	if w := r.warm.take(key, job.ScriptName); w != nil {
		return r.serveTaken(ctx, w, job, python, key, params, deadline, log)
	}
	charge := r.blockingCharge(job, key)
	release, ok := r.blocking.tryAcquire(charge)
	if !ok {
		var w *warmProc
		var late *Result
		var err error
		release, w, late, err = r.waitCharge(ctx, job, key, deadline, charge)
		switch {
		case err != nil:
			return Result{}, fmt.Errorf("run script %q: %w", job.ScriptName, err)
		case late != nil:
			return *late, nil
		case w != nil:
			return r.serveTaken(ctx, w, job, python, key, params, deadline, log)
		}
	}
	w, started, res, err := r.takeOrStart(ctx, job, python, key, deadline, log)
	if err != nil || res != nil {
		release()
		if res != nil {
			return *res, nil
		}
		return Result{}, err
	}
	if !started {
		release() // another call put one back meanwhile
	} else {
		w.holdCharge(r.blocking, release, charge)
		if w.async { // the script became async under the same key: nothing else waits on this runner
			w.kill("the script changed from def to async def")
			return Result{}, fmt.Errorf("run script %q: %w", job.ScriptName, contract.Transiently(errors.New("the script's scrape changed from def to async def")))
		}
	}
	return r.serveTaken(ctx, w, job, python, key, params, deadline, log)
}

// waitCharge waits for a charge of the memory budget for a new runner of key, or for an idle runner of
// key that another call puts back meanwhile (w), whichever comes first; until its deadline (late).
// While it waits, the idle runners of key are not stopped to free memory (evictIdle, put).
func (r *Runner) waitCharge(ctx context.Context, job Job, key string, deadline time.Time, charge int64) (release func(), w *warmProc, late *Result, err error) {
	p := r.warm
	p.mu.Lock()
	p.waitingFor[key]++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		if p.waitingFor[key]--; p.waitingFor[key] == 0 {
			delete(p.waitingFor, key)
		}
		p.mu.Unlock()
	}()
	type grant struct {
		release func()
		late    *Result
		err     error
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make(chan grant, 1)
	go func() {
		release, late, err := r.blocking.acquire(actx, deadline, time.Now(), charge)
		got <- grant{release, late, err}
	}()
	poll := time.NewTicker(startPoll)
	defer poll.Stop()
	for {
		select {
		case g := <-got:
			return g.release, nil, g.late, g.err
		case <-poll.C:
			if w := p.take(key, job.ScriptName); w != nil {
				cancel()
				if g := <-got; g.release != nil { // granted meanwhile: not needed
					g.release()
				}
				return nil, w, nil, nil
			}
		}
	}
}

// startPoll is how often a call waiting for a start slot looks for a runner another call has put back.
const startPoll = 2 * time.Millisecond

// takeOrStart returns an idle runner of key, or starts one. A start costs an interpreter and the script's
// imports (tens to hundreds of milliseconds of CPU): when many calls of a script arrive at once (a burst,
// or admission raising the capacity), each starting its own would put all those starts on the CPU together,
// slowing every one of them, and leave more runners than the calls need once the burst is served. So at
// most Runner.starts run at once; a call waiting for a slot takes a runner that another call has put back
// meanwhile (with calls of a few hundred milliseconds, one comes back every few). started says w is new.
func (r *Runner) takeOrStart(ctx context.Context, job Job, python, key string, deadline time.Time, log *slog.Logger) (w *warmProc, started bool, res *Result, err error) {
	if w := r.warm.take(key, job.ScriptName); w != nil {
		return w, false, nil, nil
	}
	acquired := false
	select {
	case r.starts <- struct{}{}:
		acquired = true
	default:
	}
	if !acquired {
		waitStart := time.Now()
		poll := time.NewTicker(startPoll)
		defer poll.Stop()
		late := time.NewTimer(time.Until(deadline))
		defer late.Stop()
		for !acquired {
			select {
			case r.starts <- struct{}{}:
				acquired = true
			case <-poll.C:
				if w := r.warm.take(key, job.ScriptName); w != nil {
					return w, false, nil, nil
				}
			case <-late.C:
				out := failure(Result{Duration: time.Since(waitStart)}, contract.StatusTimeout, contract.CodeScriptTimeout,
					"no runner of this script became free, nor could one start, before the run's timeout")
				return nil, false, &out, nil
			case <-ctx.Done():
				return nil, false, nil, fmt.Errorf("run script %q: %w", job.ScriptName, ctx.Err())
			}
		}
	}
	defer func() { <-r.starts }()
	if w := r.warm.take(key, job.ScriptName); w != nil { // put back while this call waited
		return w, false, nil, nil
	}
	w, res, err = r.startRunner(ctx, job, python, key, deadline, log)
	if err != nil || res != nil {
		return nil, false, res, err
	}
	r.warm.mu.Lock()
	r.warm.started(w, false)
	r.warm.mu.Unlock()
	return w, true, nil, nil
}

// serveTaken serves job on w, a one-call-at-a-time runner this caller holds, and pools it again or retires
// it.
func (r *Runner) serveTaken(ctx context.Context, w *warmProc, job Job, python, key string, params []byte, deadline time.Time, log *slog.Logger) (Result, error) {
	nonce := newNonce()
	request := withNonce(nonce, encodeRequest(job, params, deadline))
	res, reusable, err := r.serveWarm(ctx, w, job, nonce, request, deadline, log)
	w.served++
	tooBig := false
	bound := r.warm.cfg.MaxRSSBytes
	if reusable && (bound > 0 || w.child != nil) {
		rss, ok := w.rss.read(w.pid, r.contain.pidns && w.child == nil)
		if ok && w.child != nil {
			r.measureForked(w, rss)
		}
		if ok && bound > 0 && rss > bound {
			tooBig = true
			log.Info("recycling a warm runner past its memory bound", "rss_bytes", rss, "max_rss_bytes", bound, "served", w.served)
		}
	}
	if reusable && w.served < r.warm.cfg.MaxRequests && !tooBig {
		r.warm.put(w)
	} else {
		w.kill("recycled")
		r.warm.mu.Lock()
		r.warm.recycled()
		r.warm.mu.Unlock()
		if reusable {
			// A healthy runner retired for its age or its size: start its successor now, off the request path, so the
			// next request of this script finds a warm runner instead of paying the interpreter start and
			// the script's import (tens of milliseconds, the p99 of a busy worker).
			r.replaceWarm(job, python, key)
		}
	}
	return res, err
}

// replaceWarm starts a runner for job's script in the background and pools it. A runner that cannot start
// is only logged: the next request starts its own and reports what went wrong.
func (r *Runner) replaceWarm(job Job, python, key string) {
	job.RequestID, job.Parameters = "", nil
	r.warm.mu.Lock()
	defer r.warm.mu.Unlock()
	if r.warm.closed {
		return
	}
	r.warm.bg.Go(func() {
		log := r.cfg.Logger.With("script", job.ScriptName)
		charge := r.blockingCharge(job, key)
		release, ok := r.blocking.tryAcquire(charge)
		if !ok {
			log.Debug("no memory in the budget for a successor warm runner now; the next request starts one")
			return
		}
		ctx, cancel := context.WithTimeout(r.warm.stop, job.Timeout) // Shutdown interrupts the start
		defer cancel()
		w, res, err := r.startRunner(ctx, job, python, key, time.Now().Add(job.Timeout), log)
		if err != nil || res != nil {
			release()
			log.Debug("could not start a successor warm runner; the next request starts one", "error", err)
			return
		}
		w.holdCharge(r.blocking, release, charge)
		w.out.end(ctx) // what the script printed while importing is logged as the script's
		r.warm.mu.Lock()
		r.warm.started(w, true)
		r.warm.mu.Unlock()
		r.warm.put(w)
	})
}

// startWarm starts a runner and waits for its ready frame. A script that cannot be imported comes back as
// a Result (and the runner is gone).
func (r *Runner) startWarm(ctx context.Context, job Job, python, key string, deadline time.Time, log *slog.Logger) (*warmProc, *Result, error) {
	return r.startWarmAs(ctx, job, python, key, deadline, log, false)
}

// startWarmAs is startWarm; asTemplate asks the runner to become a template (fork.go) if its script's scrape
// is a plain def run one call at a time (w.tmpl is then set; an async script's runner is shared as usual).
func (r *Runner) startWarmAs(ctx context.Context, job Job, python, key string, deadline time.Time, log *slog.Logger, asTemplate bool) (*warmProc, *Result, error) {
	r.warm.startsUnderWay.Add(1)
	defer r.warm.startsUnderWay.Add(-1)
	begun := time.Now()
	runDir, err := r.newRunDir("warm-", job)
	uid := r.uidOf(job)
	if err != nil {
		return nil, nil, fmt.Errorf("run script %q: %w", job.ScriptName, contract.Transiently(err))
	}
	p, err := newPipes()
	if err != nil {
		_ = os.RemoveAll(runDir)
		r.runEnded(r.cfg.Logger, uid)
		return nil, nil, fmt.Errorf("run script %q: %w", job.ScriptName, contract.Transiently(err))
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		p.close()
		_ = os.RemoveAll(runDir)
		r.runEnded(r.cfg.Logger, uid)
		return nil, nil, fmt.Errorf("run script %q: %w", job.ScriptName, contract.Transiently(err))
	}
	w := &warmProc{
		key: key, script: job.ScriptName, reqW: reqW, resF: p.resultR, res: bufio.NewReader(p.resultR),
		runDir: runDir, group: &group{}, exited: make(chan struct{}), gone: make(chan struct{}), log: r.cfg.Logger.With("script", job.ScriptName),
		nonce: newNonce(), maxResult: r.resultLimit(job),
	}
	w.start.job, w.start.python = job, python
	w.start.job.RequestID, w.start.job.Parameters = "", nil
	var ctl, ctlChild *os.File // a template's control socket: the worker's end and the runner's (its fd 5)
	if asTemplate {
		if ctl, ctlChild, err = controlPair(); err != nil {
			p.close()
			closeAll(reqR, reqW)
			_ = os.RemoveAll(runDir)
			r.runEnded(r.cfg.Logger, uid)
			return nil, nil, fmt.Errorf("run script %q: %w", job.ScriptName, contract.Transiently(err))
		}
		defer closeAll(ctl, ctlChild) // newTemplate keeps a connection of its own
	}
	// The runner outlives ctx (the request that started it): it ends by w.kill, never by a context.
	cmd, jl, err := r.command(context.WithoutCancel(ctx), python, job, runDir, p, w.group, reqR, ctlChild)
	if err != nil {
		p.close()
		closeAll(reqR, reqW)
		_ = os.RemoveAll(runDir)
		r.runEnded(r.cfg.Logger, uid)
		return nil, nil, fmt.Errorf("run script %q: %w", job.ScriptName, contract.Transiently(err))
	}
	w.out = newOutputRouter(w.log, r.cfg.MaxOutputBytes)

	// The thread that starts the child must outlive it (Pdeathsig), so a goroutine locked to its thread
	// starts, waits for and reaps the runner, and ends the thread with it.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
		if err := startChild(cmd); err != nil {
			started <- err
			return
		}
		w.pid = cmd.Process.Pid
		if jl != nil {
			if err := jl.start(r.cfg.ServeProxy); err != nil {
				w.group.exited(w.pid) // kills the helper's group
				_ = cmd.Wait()
				forgetChild(w.pid)
				jl.close()
				started <- err
				return
			}
		}
		started <- nil
		if waitExited(w.pid) {
			w.group.exited(w.pid)
		}
		_ = cmd.Wait()
		w.group.exited(w.pid)
		w.state = cmd.ProcessState
		forgetChild(w.pid)
		r.sweep(w.log, w.pid, uid)
		jl.close()
		closeAll(p.stdinW, reqW)
		r.released(w, p, runDir)
	}()
	if err := <-started; err != nil {
		p.close()
		closeAll(reqR, reqW)
		_ = os.RemoveAll(runDir)
		r.runEnded(r.cfg.Logger, uid)
		return nil, nil, fmt.Errorf("run script %q: start %s: %w", job.ScriptName, python, contract.Transiently(err))
	}
	closeAll(p.stdinR, p.stdoutW, p.stderrW, p.resultW, reqR, ctlChild)
	_ = p.stdinW.Close() // the runner reads nothing on stdin
	w.consumeOutput(p)

	w.out.begin(log)
	// The hello frame gives the runner its nonce (its ready frame and heartbeats carry it), the loop lag
	// bound (its heartbeat interval) and, under "isolation": "threads", how many calls it serves at once
	// in threads when its scrape is a plain def.
	threads := 0
	if job.Threads {
		threads = r.warm.cfg.MaxThreads
	}
	hello := fmt.Appendf(nil, `{"nonce":%q,"lag_limit_ms":%d,"threads":%d,"template":%t}`, w.nonce, r.warm.cfg.LoopLagLimit.Milliseconds(), threads, ctl != nil)
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(hello)))
	_ = reqW.SetWriteDeadline(deadline)
	_, _ = reqW.Write(append(frame, hello...)) // a runner that died first shows as EOF below
	body, res, err := r.readFrame(ctx, w, deadline, job)
	if err != nil || res != nil {
		w.kill("failed to start")
		w.out.end(ctx)
		return nil, res, err
	}
	doc, ok := bytes.CutPrefix(body, []byte(w.nonce))
	if !ok {
		w.kill("forged ready frame")
		w.out.end(ctx)
		res := failure(Result{OutputTail: w.out.lastTail()}, contract.StatusFailed, contract.CodeScriptCrashed,
			"the script's runner sent a ready frame without its nonce (a forged frame?); it was stopped")
		return nil, &res, nil
	}
	w.startTook = time.Since(begun) // read once the runner counts as started (warmPool.started)
	switch string(doc) {
	case `{"ready":true,"async":false}`:
		if ctl != nil {
			w.log.Debug("the script's runner declined to be a template: the script opened a socket or started a thread at import (fork.go); its runners start afresh")
		}
		return w, nil, nil
	case templateReady:
		if ctl == nil {
			w.kill("a template it was not asked to be")
			w.out.end(ctx)
			res := failure(Result{OutputTail: w.out.lastTail()}, contract.StatusFailed, contract.CodeScriptCrashed,
				"the script's runner sent a template's ready frame unasked (a forged frame?); it was stopped")
			return nil, &res, nil
		}
		w.out.end(ctx) // what the script printed while importing is logged with the request that started it
		if err := r.newTemplate(w, ctl); err != nil {
			w.kill("template without its control socket")
			return nil, nil, fmt.Errorf("run script %q: %w", job.ScriptName, contract.Transiently(err))
		}
		return w, nil, nil
	case `{"ready":true,"async":true}`, threadsReady:
		w.async = true
		w.threads = string(doc) == threadsReady
		w.out.end(ctx) // what the script printed while importing is logged with the request that started it
		r.becomeShared(w)
		return w, nil, nil
	default:
		w.kill("script failed to load")
		<-w.exited
		w.out.end(ctx)
		out, perr := r.interpret(Result{OutputTail: w.out.lastTail()}, doc, w.state, job)
		return nil, &out, perr
	}
}

// consumeOutput starts reading the runner's stdout and stderr.
func (w *warmProc) consumeOutput(p *pipes) {
	w.outR = []*os.File{p.stdoutR, p.stderrR}
	w.consumers.Add(2)
	go func() { defer w.consumers.Done(); w.out.consume("stdout", p.stdoutR) }()
	go func() { defer w.consumers.Done(); w.out.consume("stderr", p.stderrR) }()
}

// released lets an exited runner go: it leaves the pipes KillGrace to drain what escaped processes still
// hold, then closes them and removes dir, the runner's folder.
func (r *Runner) released(w *warmProc, p *pipes, dir string) {
	w.dropCharge() // its memory is free
	w.rss.close()
	p.setDeadline(time.Now().Add(r.cfg.KillGrace))
	close(w.exited)
	w.consumers.Wait()
	closeAll(p.stdoutR, p.stderrR, p.resultR)
	removeRunDir(context.Background(), w.log, dir)
	close(w.gone)
}

// threadsReady is the ready document of a threads runner (runner.py sends it only when the hello asked for
// threads).
const threadsReady = `{"ready":true,"async":false,"threads":true}`

// serveWarm sends one request and reads its answer. reusable says whether the runner may serve again.
func (r *Runner) serveWarm(ctx context.Context, w *warmProc, job Job, nonce string, request []byte, deadline time.Time, log *slog.Logger) (Result, bool, error) {
	w.out.begin(log)
	start := time.Now()
	frame := make([]byte, 4+len(request))
	binary.BigEndian.PutUint32(frame, uint32(len(request)))
	copy(frame[4:], request)
	_ = w.reqW.SetWriteDeadline(deadline)
	if _, err := w.reqW.Write(frame); err != nil {
		<-w.exited
		w.out.end(ctx)
		res := failure(Result{Duration: time.Since(start), OutputTail: w.out.lastTail()}, contract.StatusFailed,
			contract.CodeScriptCrashed, r.describeWarmExit(w))
		return res, false, nil
	}
	body, res, err := r.readFrame(ctx, w, deadline, job)
	duration := time.Since(start)
	w.drainOutput()
	w.out.end(ctx)
	if err != nil {
		return Result{Duration: duration, OutputTail: w.out.lastTail()}, false, err
	}
	if res != nil {
		res.Duration = duration
		return *res, false, nil
	}
	doc, ok := bytes.CutPrefix(body, []byte(nonce))
	if !ok {
		w.log.Warn("a warm runner's answer does not carry the request's nonce (forged frame?); stopping the runner", "pid", w.pid)
		w.kill("forged answer frame")
		return failure(Result{Duration: duration, OutputTail: w.out.lastTail()}, contract.StatusFailed, contract.CodeScriptCrashed,
			"the script's runner sent an answer without the request's nonce (a forged frame?); it was stopped"), false, nil
	}
	out, err := r.interpret(Result{Duration: duration, OutputTail: w.out.lastTail()}, doc, w.state, job)
	return out, err == nil && out.Status == contract.StatusCompleted, err
}

// readFrame reads one answer frame before the deadline. It returns a Result instead for a timeout, an
// oversized answer or a runner that died, and an error when ctx ended first; in all three the runner is
// killed.
func (r *Runner) readFrame(ctx context.Context, w *warmProc, deadline time.Time, job Job) ([]byte, *Result, error) {
	type frame struct {
		doc []byte
		err error
	}
	got := make(chan frame, 1)
	_ = w.resF.SetReadDeadline(deadline)
	go func() {
		var header [4]byte
		if _, err := io.ReadFull(w.res, header[:]); err != nil {
			got <- frame{err: err}
			return
		}
		n := int(binary.BigEndian.Uint32(header[:]))
		if n > w.maxResult+resultEnvelopeBytes+nonceLen {
			got <- frame{err: errResultTooLarge}
			return
		}
		doc := make([]byte, n)
		if _, err := io.ReadFull(w.res, doc); err != nil {
			got <- frame{err: err}
			return
		}
		got <- frame{doc: doc}
	}()
	select {
	case f := <-got:
		switch {
		case f.err == nil:
			return f.doc, nil, nil
		case errors.Is(f.err, errResultTooLarge):
			w.kill("result too large")
			res := r.tooLarge(Result{OutputTail: w.out.currentTail()}, job)
			return nil, &res, nil
		case errors.Is(f.err, os.ErrDeadlineExceeded):
			w.kill("timeout")
			res := failure(Result{OutputTail: w.out.currentTail()}, contract.StatusTimeout, contract.CodeScriptTimeout,
				fmt.Sprintf("script did not finish within %s and was stopped", job.Timeout))
			return nil, &res, nil
		default: // EOF: the runner died
			<-w.exited
			res := failure(Result{OutputTail: w.out.currentTail()}, contract.StatusFailed, contract.CodeScriptCrashed, r.describeWarmExit(w))
			return nil, &res, nil
		}
	case <-ctx.Done():
		w.kill("cancelled")
		<-got
		return nil, nil, fmt.Errorf("run script %q: %w", job.ScriptName, ctx.Err())
	}
}

// outputRouter consumes a warm runner's stdout and stderr for its whole life and attributes each line to
// the request running at the time (or to the script, between requests). A shared runner's lines carry the
// tag of their call (shared.go), and route finds that call's output.
type outputRouter struct {
	base    *slog.Logger
	tailCap int
	mu      sync.Mutex
	cur     *output
	last    *output // the most recent finished request's output, for its tail
	adding  atomic.Int32
	// route, once set, maps a line's call tag to the call's output (nil: the call is not in flight), or
	// records the call's end mark (end true; it returns nil).
	route func(tag []byte, end bool) *output
}

func newOutputRouter(base *slog.Logger, tailCap int) *outputRouter {
	return &outputRouter{base: base, tailCap: tailCap, cur: newOutput(base, tailCap)}
}

func (o *outputRouter) setRoute(route func(tag []byte, end bool) *output) {
	o.mu.Lock()
	o.route = route
	o.mu.Unlock()
}

func (o *outputRouter) begin(log *slog.Logger) {
	o.mu.Lock()
	o.cur = newOutput(log, o.tailCap)
	o.mu.Unlock()
}

func (o *outputRouter) end(ctx context.Context) {
	o.mu.Lock()
	cur := o.cur
	o.cur = newOutput(o.base, o.tailCap)
	o.mu.Unlock()
	cur.finish(ctx)
	o.mu.Lock()
	o.last = cur
	o.mu.Unlock()
}

// currentTail is the output tail of the request running now; lastTail that of the one that just ended.
func (o *outputRouter) currentTail() string {
	o.mu.Lock()
	cur := o.cur
	o.mu.Unlock()
	return cur.tail()
}

func (o *outputRouter) lastTail() string {
	o.mu.Lock()
	last := o.last
	o.mu.Unlock()
	if last == nil {
		return ""
	}
	return last.tail()
}

func (o *outputRouter) consume(stream string, r io.Reader) {
	br := bufio.NewReaderSize(r, readBufferBytes)
	continued := false
	var target *output // where the line being continued went
	for {
		fragment, err := br.ReadSlice('\n')
		if len(fragment) > 0 {
			o.adding.Add(1)
			o.mu.Lock()
			cur, route := o.cur, o.route
			o.mu.Unlock()
			if !continued {
				target = cur
				if route != nil && len(fragment) > nonceLen+1 && fragment[0] == tagStart {
					tag, mark := fragment[1:1+nonceLen], fragment[1+nonceLen]
					switch mark {
					case endMark:
						route(tag, true)
						fragment = nil
					case tagEnd:
						if out := route(tag, false); out != nil {
							target = out
						}
						fragment = fragment[2+nonceLen:]
					}
				}
			}
			if len(fragment) > 0 {
				target.add(context.Background(), stream, fragment, continued)
				continued = fragment[len(fragment)-1] != '\n'
			}
			o.adding.Add(-1)
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// drainOutput waits, briefly, until the runner's stdout and stderr pipes hold no unread bytes, so lines the
// script printed before answering are attributed to its request rather than to the next one.
func (w *warmProc) drainOutput() {
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) {
		if pending(w.outR...) == 0 && w.out.adding.Load() == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
