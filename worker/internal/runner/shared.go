package runner

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
)

// Shared runners: a warm runner of an `async def scrape` serves many calls at once, each an asyncio task in
// the runner's one event loop (runner.py, serve_shared); under "isolation": "threads" a runner of a plain
// `def scrape` does too, each call in a thread of its own (a threads runner: runner.py's ThreadsServer,
// warmProc.threads). Every call has a random nonce that its request and its answer carry; a dispatcher
// goroutine reads the runner's answer frames and hands each to the call whose nonce it carries. An answer
// that matches no call in flight (a frame another process forged through /proc/<pid>/fd) stops the runner.
// Heartbeats on the same channel, carrying the runner's own nonce, report the loop's lag (a threads
// runner's: how late its heartbeat thread got the interpreter lock) and the runner's RSS: a lag past
// WarmConfig.LoopLagLimit (or silence that long while calls are in flight) stops the runner and fails its
// calls with CodeEventLoopBlocked; a runner whose RSS passes WarmConfig.MaxRSSBytes is retired: it takes no
// new call and stops once the calls in flight have ended. Calls of different scripts never share a runner:
// runners are kept per warmKey.

// nonceLen is the length of a nonce as it travels: 16 random bytes, hex-encoded.
const nonceLen = 32

// Tags of the lines a shared runner writes on stdout and stderr (runner.py, CallWriter): TAG_START nonce
// TAG_END line, or TAG_START nonce END_MARK for the call's last line.
const (
	tagStart = 0x1e
	tagEnd   = 0x1f
	endMark  = 0x1d
)

// newNonce returns a fresh random nonce.
func newNonce() string {
	var b [nonceLen / 2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

// family is the pool's view of one warmKey: whether its script is async (known after its first runner
// started), the shared runners taking calls, and the start in progress, which other callers wait for rather
// than starting runners of their own.
type family struct {
	script   string
	known    bool
	async    bool
	procs    []*warmProc // shared runners taking new calls
	starting *starting   // the start in progress; nil when none
}

// starting is a runner start that other callers of the same key wait for.
type starting struct {
	done chan struct{}
	// failed is what the start came to when the script could not be loaded: the waiters get it too,
	// rather than each trying again.
	failed *Result
}

// sharedCall is one call in flight on a shared runner.
type sharedCall struct {
	nonce     string
	out       *output
	answer    chan []byte   // the result document, once
	ended     chan struct{} // closed when both streams carried the call's end mark
	ends      int
	abandoned bool // the caller gave up (timeout, ctx); the answer is dropped
}

// sharedState is the part of a warmProc that only shared runners use. Guarded by the pool's mutex except
// where noted.
type sharedState struct {
	calls    map[string]*sharedCall
	live     int // calls whose caller still waits
	maxCalls int // bound on live: WarmConfig.MaxCalls, or MaxThreads for a threads runner
	retired  bool
	// dead is closed when the runner cannot answer any more (it exited, blocked its loop, sent a forged
	// frame); failCode and failMessage say why, for every call still waiting.
	dead        chan struct{}
	failOnce    sync.Once
	failCode    contract.Code
	failMessage string
	lastHeard   time.Time
	writeMu     sync.Mutex // serialises request frames
}

// pick returns the shared runner of f with the fewest live calls below its bound, or nil.
func (f *family) pick() *warmProc {
	var best *warmProc
	for _, w := range f.procs {
		if w.shared.live < w.shared.maxCalls && (best == nil || w.shared.live < best.shared.live) {
			best = w
		}
	}
	return best
}

// acquire returns a shared runner of key with room for one more call, registering the call on it; or a
// channel to wait on while a runner of key starts; or neither, when the caller must start a runner itself
// (start is then true and the family records the start) or use the one-call-at-a-time path (start false).
// Called with p.mu held.
func (p *warmPool) acquire(key, script string, c *sharedCall) (w *warmProc, wait *starting, start bool) {
	f := p.families[key]
	if f == nil {
		for k, other := range p.families {
			if other.script == script && other.starting == nil {
				// A new version of the script: its old runners take no new call.
				for _, old := range other.procs {
					p.retire(old, "a newer version of the script runs")
				}
				delete(p.families, k)
			}
		}
		f = &family{script: script}
		p.families[key] = f
	}
	if f.known && !f.async {
		return nil, nil, false
	}
	if w := f.pick(); w != nil {
		p.register(w, c)
		return w, nil, false
	}
	if f.starting != nil {
		return nil, f.starting, false
	}
	f.starting = &starting{done: make(chan struct{})}
	return nil, nil, true
}

// startEnded records the end of the start acquire asked for: w is the runner, nil when none started (failed
// then says why, when the script could not be loaded); async says what its script is. Called with p.mu
// held.
func (p *warmPool) startEnded(key string, w *warmProc, async bool, failed *Result) {
	f := p.families[key]
	if f == nil {
		return
	}
	if f.starting != nil {
		f.starting.failed = failed
		close(f.starting.done)
		f.starting = nil
	}
	if w == nil {
		return
	}
	f.known, f.async = true, async
	if async {
		if p.closed {
			w.shared.retired, w.retireWhy = true, "worker stopping" // serves its first call, then stops
			return
		}
		f.procs = append(f.procs, w)
	}
}

func (p *warmPool) register(w *warmProc, c *sharedCall) {
	w.shared.calls[c.nonce] = c
	w.shared.live++
	w.lastUsed = time.Now()
}

// retire stops giving w new calls and stops it once no caller waits on it, counting it as recycled.
// Called with p.mu held.
func (p *warmPool) retire(w *warmProc, why string) { p.retireCounted(w, why, true) }

// retireCounted is retire; counted false leaves the recycled count alone (Shutdown).
func (p *warmPool) retireCounted(w *warmProc, why string, counted bool) {
	if !w.shared.retired {
		w.shared.retired = true
		w.retireWhy = why
		if counted {
			p.recycled()
		}
		if f := p.families[w.key]; f != nil {
			for i, x := range f.procs {
				if x == w {
					f.procs = append(f.procs[:i], f.procs[i+1:]...)
					break
				}
			}
		}
	}
	if w.shared.live == 0 {
		w.kill(why)
	}
}

// release ends c's part in w. Called with p.mu held.
func (p *warmPool) release(w *warmProc, c *sharedCall, abandon bool) {
	if c.abandoned {
		return
	}
	if abandon {
		c.abandoned = true // its answer, when it comes, is dropped
	} else {
		delete(w.shared.calls, c.nonce)
	}
	w.shared.live--
	w.served++
	w.lastUsed = time.Now()
	switch {
	case w.shared.retired:
		p.retire(w, w.retireWhy)
	case w.served >= p.cfg.MaxRequests:
		p.retire(w, "served its maximum of requests")
	case w.served >= successorAt(p.cfg.MaxRequests) && !w.succeeded:
		w.succeeded = true
		p.startSuccessor(w)
	}
}

// successorAt is how many calls a shared runner serves before its successor starts: nine tenths of its
// maximum, so the successor is ready (and takes the new calls, having the fewest) by the time the runner
// retires, and no call waits for an interpreter to start.
func successorAt(maxRequests int) int { return max(1, maxRequests-max(1, maxRequests/10)) }

// startSuccessor starts, in the background, another shared runner of w's key, unless one is starting or
// the family has another runner already. Called with p.mu held.
func (p *warmPool) startSuccessor(w *warmProc) {
	f := p.families[w.key]
	if f == nil || f.starting != nil || len(f.procs) > 1 || p.closed || p.runner == nil {
		return
	}
	f.starting = &starting{done: make(chan struct{})}
	r, key, job, python := p.runner, w.key, w.start.job, w.start.python
	p.bg.Go(func() {
		ctx, cancel := context.WithTimeout(p.stop, job.Timeout) // Shutdown interrupts the start
		defer cancel()
		log := r.cfg.Logger.With("script", job.ScriptName)
		next, _, err := r.startWarm(ctx, job, python, key, time.Now().Add(job.Timeout), log)
		p.mu.Lock()
		defer p.mu.Unlock()
		if next == nil || !next.async {
			// Nothing ready (waiters start their own, reporting why) or the script is no longer async.
			p.startEnded(key, nil, false, nil)
			if next != nil {
				next.kill("the script is no longer async")
			}
			log.Debug("could not start a successor shared runner; the next call starts one", "error", err)
			return
		}
		p.started(next, true)
		p.startEnded(key, next, true, nil)
		next.shared.live-- // no caller of its own (becomeShared counted one)
		if next.shared.retired && next.shared.live == 0 {
			next.kill(next.retireWhy)
		}
	})
}

// fail stops w at once: every call still waiting gets code and message.
func (r *Runner) fail(w *warmProc, code contract.Code, message string) {
	w.shared.failOnce.Do(func() {
		p := r.warm
		p.mu.Lock()
		w.shared.failCode, w.shared.failMessage = code, message
		if !w.shared.retired {
			p.retire(w, message)
		}
		w.kill(message)
		p.mu.Unlock()
		close(w.shared.dead)
	})
}

// runShared serves job on a shared runner of its key, starting one when none has room. ok false means the
// script is not async: the caller serves the job one call at a time.
func (r *Runner) runShared(ctx context.Context, job Job, python, key string, params []byte, deadline time.Time, log *slog.Logger) (res Result, err error, ok bool) {
	p := r.warm
	c := &sharedCall{nonce: newNonce(), out: newOutput(log, r.cfg.MaxOutputBytes), answer: make(chan []byte, 1), ended: make(chan struct{})}
	for {
		p.mu.Lock()
		w, wait, start := p.acquire(key, job.ScriptName, c)
		if w != nil {
			p.stats.Reused++
			p.metrics.WarmReused()
		}
		p.mu.Unlock()
		switch {
		case w != nil:
			res, err := r.callShared(ctx, w, job, params, c, deadline)
			return res, err, true
		case wait != nil:
			select {
			case <-wait.done:
				if wait.failed != nil {
					res := *wait.failed
					if res.Err != nil {
						e := *res.Err // each caller gets its own copy
						res.Err = &e
					}
					return res, nil, true
				}
				continue
			case <-ctx.Done():
				return Result{}, fmt.Errorf("run script %q: %w", job.ScriptName, ctx.Err()), true
			}
		case !start:
			return Result{}, nil, false
		}
		// This caller starts the runner of key, unless an idle one-call-at-a-time runner shows the script
		// is not async.
		if idle := p.take(key, job.ScriptName); idle != nil {
			p.mu.Lock()
			p.startEnded(key, idle, false, nil)
			p.mu.Unlock()
			res, err := r.serveTaken(ctx, idle, job, python, key, params, deadline, log)
			return res, err, true
		}
		// Until it has started, the runner may be a one-call one, which holds a charge of the memory budget:
		// taken before the start (waiting, or stopping idle runners, as any), given back if it is shared.
		charge := r.blockingCharge(job, key)
		release, late, err := r.blocking.acquire(ctx, deadline, time.Now(), charge)
		if err != nil || late != nil {
			p.mu.Lock()
			p.startEnded(key, nil, false, late)
			p.mu.Unlock()
			if late != nil {
				return *late, nil, true
			}
			return Result{}, fmt.Errorf("run script %q: %w", job.ScriptName, err), true
		}
		w, failed, err := r.startRunner(ctx, job, python, key, deadline, log)
		if w != nil && !w.async {
			w.holdCharge(r.blocking, release, charge)
		} else {
			release()
		}
		p.mu.Lock()
		if w != nil {
			p.started(w, false)
		}
		p.startEnded(key, w, w != nil && w.async, failed)
		if w != nil && w.async {
			w.shared.calls[c.nonce] = c // live counts it already (becomeShared)
		}
		p.mu.Unlock()
		switch {
		case err != nil:
			return Result{}, err, true
		case failed != nil:
			return *failed, nil, true
		case !w.async:
			res, err := r.serveTaken(ctx, w, job, python, key, params, deadline, log)
			return res, err, true
		}
		res, err := r.callShared(ctx, w, job, params, c, deadline)
		return res, err, true
	}
}

// callShared sends c's request to w and waits for its answer, its deadline (the run's: Timeout from Run's
// start, the runner's start included), ctx or the runner's end.
func (r *Runner) callShared(ctx context.Context, w *warmProc, job Job, params []byte, c *sharedCall, deadline time.Time) (Result, error) {
	p := r.warm
	start := time.Now()
	request := withNonce(c.nonce, encodeRequest(job, params, deadline))
	if err := w.sendFrame(request, deadline); err != nil {
		<-w.shared.dead
		p.mu.Lock()
		p.release(w, c, false)
		p.mu.Unlock()
		return r.sharedFailure(w, c, start), nil
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case doc := <-c.answer:
		// runner.py wrote the call's end marks before its answer: wait until the consumers have read them,
		// so the call's own lines are in its log and tail.
		grace := time.NewTimer(r.cfg.KillGrace)
		select {
		case <-c.ended:
		case <-w.shared.dead:
		case <-grace.C:
		}
		grace.Stop()
		p.mu.Lock()
		p.release(w, c, false)
		p.mu.Unlock()
		c.out.finish(ctx)
		res := Result{Duration: time.Since(start), OutputTail: c.out.tail()}
		o, err := parseResult(doc, w.maxResult)
		if err != nil {
			return failure(res, contract.StatusFailed, contract.CodeInvalidOutput,
				"the script's result channel held a malformed document: "+err.Error()), nil
		}
		if o.Err != nil && o.Err.Code == contract.CodeInternal {
			return res, fmt.Errorf("run script %q: %s", job.ScriptName, o.Err.Message)
		}
		res.Status, res.Data, res.Err = o.Status, o.Data, o.Err
		if res.Status == contract.StatusTimeout {
			res.Err.Message = fmt.Sprintf("script did not finish within %s; its coroutine was cancelled", job.Timeout)
			if w.threads {
				// Nothing stops a thread from outside: the call's thread runs on, so the runner takes no new
				// call and is stopped once its other calls have ended.
				res.Err.Message = fmt.Sprintf("script did not finish within %s; its call was abandoned (a thread cannot be "+
					"stopped) and its runner retired", job.Timeout)
				p.mu.Lock()
				p.retire(w, "a call in a thread ran past its time budget")
				p.mu.Unlock()
			}
		}
		if res.Err != nil {
			res.Err.Detail = joinDetail(res.Err.Detail, res.OutputTail)
		}
		return res, nil
	case <-timer.C:
		// runner.py cancels a call before its deadline; one that did not answer ignored the cancel. The
		// runner takes no new call and stops when the others have ended.
		p.mu.Lock()
		p.release(w, c, true)
		p.retire(w, "a call did not end at its deadline")
		p.mu.Unlock()
		res := Result{Duration: time.Since(start), OutputTail: c.out.tail()}
		return failure(res, contract.StatusTimeout, contract.CodeScriptTimeout,
			fmt.Sprintf("script did not finish within %s and was stopped", job.Timeout)), nil
	case <-ctx.Done():
		p.mu.Lock()
		p.release(w, c, true)
		if w.threads { // the cancel below cannot stop the call's thread
			p.retire(w, "a call in a thread was cancelled")
		}
		p.mu.Unlock()
		_ = w.sendFrame(withNonce(c.nonce, []byte(`{"cancel":true}`)), time.Now().Add(time.Second))
		return Result{Duration: time.Since(start), OutputTail: c.out.tail()},
			fmt.Errorf("run script %q: %w", job.ScriptName, ctx.Err())
	case <-w.shared.dead:
		p.mu.Lock()
		p.release(w, c, false)
		p.mu.Unlock()
		return r.sharedFailure(w, c, start), nil
	}
}

// sharedFailure is the result of a call whose runner stopped before answering it.
func (r *Runner) sharedFailure(w *warmProc, c *sharedCall, start time.Time) Result {
	res := Result{Duration: time.Since(start), OutputTail: c.out.tail()}
	code, msg := w.shared.failCode, w.shared.failMessage
	if code == "" {
		code, msg = contract.CodeScriptCrashed, "the script's shared runner stopped before answering"
	}
	return failure(res, contract.StatusFailed, code, msg)
}

// withNonce puts "nonce":n first in the JSON object doc.
func withNonce(n string, doc []byte) []byte {
	out := make([]byte, 0, len(doc)+nonceLen+12)
	out = append(out, `{"nonce":"`...)
	out = append(out, n...)
	out = append(out, '"')
	if len(doc) > 2 {
		out = append(out, ',')
	}
	return append(out, doc[1:]...)
}

// sendFrame writes one request frame to the runner.
func (w *warmProc) sendFrame(doc []byte, deadline time.Time) error {
	frame := make([]byte, 4+len(doc))
	binary.BigEndian.PutUint32(frame, uint32(len(doc)))
	copy(frame[4:], doc)
	w.shared.writeMu.Lock()
	defer w.shared.writeMu.Unlock()
	_ = w.reqW.SetWriteDeadline(deadline)
	_, err := w.reqW.Write(frame)
	return err
}

// heartbeat is what a shared runner reports about itself.
type heartbeat struct {
	LagMS    int64 `json:"lag_ms"`
	RSSBytes int64 `json:"rss_bytes"`
}

// becomeShared makes w, whose script turned out to be async, a shared runner: its output is routed by the
// calls' tags, a dispatcher reads its answers and a watchdog checks its event loop.
func (r *Runner) becomeShared(w *warmProc) {
	// live starts at 1 for the call of the caller that started the runner, so nothing (a heartbeat past the
	// RSS bound, say) stops the runner before that call is registered.
	maxCalls := r.warm.cfg.MaxCalls
	if w.threads {
		maxCalls = r.warm.cfg.MaxThreads
	}
	w.shared = &sharedState{calls: map[string]*sharedCall{}, live: 1, maxCalls: maxCalls, dead: make(chan struct{}), lastHeard: time.Now()}
	w.out.setRoute(func(tag []byte, end bool) *output {
		r.warm.mu.Lock()
		defer r.warm.mu.Unlock()
		c := w.shared.calls[string(tag)]
		if c == nil {
			return nil
		}
		if end {
			if c.ends++; c.ends == 2 {
				close(c.ended)
			}
			return nil
		}
		return c.out
	})
	p := r.warm
	p.mu.Lock()
	p.sharedAll[w] = struct{}{}
	p.mu.Unlock()
	go func() {
		<-w.exited
		p.mu.Lock()
		delete(p.sharedAll, w)
		p.mu.Unlock()
	}()
	go r.dispatch(w)
	go r.watch(w)
}

// dispatch reads w's answer frames for its whole life and hands each to its call.
func (r *Runner) dispatch(w *warmProc) {
	limit := w.maxResult + resultEnvelopeBytes + nonceLen
	_ = w.resF.SetReadDeadline(time.Time{}) // the ready frame's deadline no longer applies
	for {
		body, err := readFrameBody(w.res, limit)
		if errors.Is(err, errResultTooLarge) {
			r.fail(w, contract.CodeOutputTooLarge, fmt.Sprintf("the shared runner sent an answer larger than the limit of %d bytes; it was stopped", w.maxResult))
			return
		}
		if err != nil { // the runner is gone
			r.warm.mu.Lock() // kill logs w.served, which calls update under the lock
			w.kill("its answer channel failed")
			r.warm.mu.Unlock()
			<-w.exited
			r.fail(w, contract.CodeScriptCrashed, r.describeExit(w.state))
			return
		}
		p := r.warm
		p.mu.Lock()
		w.shared.lastHeard = time.Now()
		if len(body) < nonceLen {
			p.mu.Unlock()
			r.fail(w, contract.CodeScriptCrashed, "the shared runner sent a frame without a nonce; it was stopped")
			return
		}
		nonce, doc := string(body[:nonceLen]), body[nonceLen:]
		if nonce == w.nonce {
			p.mu.Unlock()
			var hb heartbeat
			if json.Unmarshal(doc, &hb) != nil {
				r.fail(w, contract.CodeScriptCrashed, "the shared runner sent a malformed heartbeat; it was stopped")
				return
			}
			r.loopLag.observe(time.Duration(hb.LagMS) * time.Millisecond)
			if lag := time.Duration(hb.LagMS) * time.Millisecond; lag > p.cfg.LoopLagLimit {
				r.fail(w, contract.CodeEventLoopBlocked, blockedMessage(w, lag, p.cfg.LoopLagLimit))
				return
			}
			if p.cfg.MaxRSSBytes > 0 && hb.RSSBytes > p.cfg.MaxRSSBytes {
				p.mu.Lock()
				if !w.shared.retired {
					w.log.Info("recycling a shared runner past its memory bound", "rss_bytes", hb.RSSBytes, "max_rss_bytes", p.cfg.MaxRSSBytes)
					p.retire(w, "its resident memory passed WARM_RUNNER_MAX_RSS_MB")
				}
				p.mu.Unlock()
			}
			continue
		}
		c := w.shared.calls[nonce]
		if c == nil {
			p.mu.Unlock()
			w.log.Warn("a shared runner's answer matches no call in flight (forged frame?); stopping the runner", "pid", w.pid)
			r.fail(w, contract.CodeScriptCrashed, "the script's runner sent an answer that matches no call in flight (a forged frame?); it was stopped")
			return
		}
		if c.abandoned {
			delete(w.shared.calls, nonce)
		}
		p.mu.Unlock()
		select {
		case c.answer <- doc:
		default: // a second answer for one call
			w.log.Warn("a shared runner answered one call twice (forged frame?); stopping the runner", "pid", w.pid)
			r.fail(w, contract.CodeScriptCrashed, "the script's runner answered one call twice (a forged frame?); it was stopped")
			return
		}
	}
}

// watch stops w when its event loop says nothing for LoopLagLimit while calls are in flight.
func (r *Runner) watch(w *warmProc) {
	p := r.warm
	t := time.NewTicker(max(p.cfg.LoopLagLimit/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-w.shared.dead:
			return
		case <-t.C:
		}
		p.mu.Lock()
		silent := time.Since(w.shared.lastHeard)
		busy := len(w.shared.calls) > 0
		p.mu.Unlock()
		if busy && silent > p.cfg.LoopLagLimit {
			r.fail(w, contract.CodeEventLoopBlocked, blockedMessage(w, silent, p.cfg.LoopLagLimit))
			return
		}
	}
}

func blockedMessage(w *warmProc, lag, limit time.Duration) string {
	if w.threads {
		return fmt.Sprintf("a call held the interpreter of its threads runner for at least %s (the limit is %s): CPU-bound "+
			"work, or a C extension that keeps the GIL, stops every call the runner serves in its threads; use "+
			"\"isolation\": \"warm\" (a process per call) for such a script. The runner was stopped",
			lag.Round(time.Millisecond), limit)
	}
	return fmt.Sprintf("the script blocked its runner's event loop for at least %s (the limit is %s): a blocking call "+
		"(time.sleep, a CPU-bound loop, blocking I/O) inside async def stops every call the runner serves; "+
		"use await asyncio.sleep, an async client, or asyncio.to_thread. The runner was stopped",
		lag.Round(time.Millisecond), limit)
}

// readFrameBody reads one length-prefixed frame of at most limit bytes.
func readFrameBody(r *bufio.Reader, limit int) ([]byte, error) {
	var header [4]byte
	if _, err := io.ReadFull(r, header[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(header[:]))
	if n > limit {
		return nil, errResultTooLarge
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return body, nil
}

// sharedProcs returns every shared runner of the pool. Called with p.mu held.
func (p *warmPool) sharedProcs() []*warmProc {
	var all []*warmProc
	for _, f := range p.families {
		all = append(all, f.procs...)
	}
	return all
}
