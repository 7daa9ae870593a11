package runner

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
)

// Templates. A blocking `def scrape` runs one call per runner process (isolation "warm", the default): a
// burst of N concurrent calls needs N runners, and a runner started afresh costs an interpreter start and
// the script's imports (about 120 ms of CPU for a script importing urllib.request on the bench machine),
// all of them at once on the CPU while the burst waits. Instead, the first start of such a script starts a
// template: a runner started exactly as any other (the same interpreter, containment, limits, run folder and
// user) that imports the script and then, instead of serving calls, forks one-call runners on request.
// A fork costs a few milliseconds; the child has the script imported and serves calls as a runner started
// afresh does (serveTaken), then is pooled, recycled and killed like one.
//
// The worker and the template talk over a Unix SOCK_SEQPACKET socket (the template's fd 5): a request is
// the child's runner nonce and the path of its own folder (its working folder, HOME and TMPDIR, inside the
// template's run folder), with its stdout, stderr, result and request pipe ends (SCM_RIGHTS). The child
// starts a session of its own, takes them and sends the nonce back; with SO_PASSCRED on the worker's end
// the kernel attaches the child's pid as the worker sees it (the template's PID namespace, if any, is
// below the worker's), which no process can forge for another. The worker checks that the pid is a child
// of the template leading its own session, pins it with a pidfd and watches that for its exit. The
// template reports each child's wait status ("exit <pid> <status>", pid in its own namespace), so a crash
// is described as one of a runner started afresh is.
//
// What the children of one template share: its namespaces (mount, so the run folder and /tmp; PID;
// network, so its one listener to the egress proxy) and its user, as the calls of an async def script or
// of "isolation": "threads" share their one process. They do not share memory: each is a process of its
// own, non-dumpable as the template is. A script that asks for "isolation": "process" keeps a fresh
// process per call; WarmConfig.NoFork (WARM_RUNNER_FORK=false) starts every runner afresh.
//
// A script that holds a socket or runs a thread once imported is not forked (runner.py's fork_hazard: its
// runners would share the connection, or lack the thread); it answers as an ordinary runner.
//
// A template lives while it has children; it is retired once it has none and has forked nothing for
// IdleTimeout, or a newer version of its script has a template, and when the worker stops. A template
// that dies takes its PID namespace's children with it (their calls fail as a crashed runner's do); the
// next start starts another.

// templateReady is the ready document of a template (runner.py sends it only when the hello asked for one
// and the script's scrape is a plain def).
const templateReady = `{"ready":true,"async":false,"template":true}`

// forkTimeout bounds a fork's round trip (the template forks at once; past it something is wrong).
const forkTimeout = 10 * time.Second

// template is a running template process.
type template struct {
	w       *warmProc     // the template's own runner: its process, its kill, its run folder
	ctl     *net.UnixConn // the worker's end of the control socket
	serving int           // the template's pid (under a PID namespace, the init's first child)
	created time.Time

	forkMu sync.Mutex // one fork at a time

	mu      sync.Mutex
	pending *pendingFork               // the fork waiting for its child's answer
	byNSPid map[int]*forkedChild       // live children by their pid in the template's namespace
	early   map[int]syscall.WaitStatus // statuses reported before their child was registered
	dead    chan struct{}              // closed when the control socket ends (the template is gone)
	deadErr error

	// Guarded by warmPool.mu.
	children int
	lastFork time.Time
	retired  bool

	// childMemory is the largest private memory (bytes) measured of a child after a call (measureForked), 0
	// until one is measured; lastSample when one was last measured (unix nanoseconds).
	childMemory atomic.Int64
	lastSample  atomic.Int64
}

// pendingFork is a fork request waiting for its child's answer.
type pendingFork struct {
	nonce string
	got   chan forkAnswer // buffered, one answer
}

type forkAnswer struct {
	pid int
	err error
}

// forkedChild is what the worker knows of a forked runner's end.
type forkedChild struct {
	t        *template
	status   syscall.WaitStatus
	reported chan struct{} // closed once the template reported the status
}

// templateSlot is a template of one warm key, or its start under way.
type templateSlot struct {
	ready chan struct{} // closed when the start has ended; t is nil if it made no template
	t     *template
}

// forks says whether a one-call runner of job (of warm key key) is forked from a template.
func (r *Runner) forks(job Job, key string) bool {
	if !forkSupported || r.warm.cfg.NoFork || job.Threads {
		return false
	}
	r.warm.mu.Lock()
	defer r.warm.mu.Unlock()
	return r.warm.forkFailures[key] < maxForkFailures
}

// maxForkFailures is how many forks of one warm key may fail in a row (each retiring its template and
// starting the runner afresh) before its runners all start afresh: a fork that keeps failing costs a
// template's start on top of each runner's.
const maxForkFailures = 5

// describeWarmExit says how a warm runner ended, for a crash message.
func (r *Runner) describeWarmExit(w *warmProc) string {
	if c := w.child; c != nil {
		select {
		case <-c.reported:
			return describeWait(c.status, true, false)
		default:
			return describeWait(0, false, false)
		}
	}
	return r.describeExit(w.state)
}

// startRunner starts a one-call runner for job: forked from the key's template, which it starts first when
// there is none, unless job does not fork (Runner.forks). If the script turns out to be async, the runner
// it started is a shared one, as startWarm's would be. A fork that fails retires the template and starts
// the runner afresh.
func (r *Runner) startRunner(ctx context.Context, job Job, python, key string, deadline time.Time, log *slog.Logger) (*warmProc, *Result, error) {
	if !r.forks(job, key) {
		return r.startWarm(ctx, job, python, key, deadline, log)
	}
	p := r.warm
	slot, found, closed := p.slotFor(key)
	if closed {
		return r.startWarm(ctx, job, python, key, deadline, log)
	}
	if !found {
		w, res, err := r.startWarmAs(ctx, job, python, key, deadline, log, true)
		p.mu.Lock()
		if w != nil && w.tmpl != nil {
			slot.t = w.tmpl
			w.log.Debug("template started", "pid", w.pid, "start_ms", w.startTook.Milliseconds())
		} else {
			delete(p.templates, key)
		}
		close(slot.ready)
		p.mu.Unlock()
		if err != nil || res != nil {
			return nil, res, err
		}
		if w.tmpl == nil {
			return w, nil, nil // async (shared): the caller serves it
		}
	} else {
		late := time.NewTimer(time.Until(deadline))
		defer late.Stop()
		select {
		case <-slot.ready:
		case <-late.C:
			out := failure(Result{}, contract.StatusTimeout, contract.CodeScriptTimeout,
				"no runner of this script could start before the run's timeout")
			return nil, &out, nil
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("run script %q: %w", job.ScriptName, ctx.Err())
		}
		if slot.t == nil { // its start failed: this call tries on its own
			return r.startWarm(ctx, job, python, key, deadline, log)
		}
	}
	w, err := r.fork(slot.t, job, deadline, log)
	if err == nil {
		p.mu.Lock()
		delete(p.forkFailures, key)
		p.mu.Unlock()
		if !found {
			w.startTook += slot.t.w.startTook // this call waited for the template too
		}
	}
	if err != nil {
		log.Warn("could not fork a runner from the script's template; retiring it and starting the runner afresh", "error", err)
		p.mu.Lock()
		p.retireTemplate(key, slot.t, "a fork failed")
		if p.forkFailures[key]++; p.forkFailures[key] == maxForkFailures {
			log.Error("forks of this script keep failing: its runners start afresh from now on", "failures", maxForkFailures)
		}
		p.mu.Unlock()
		return r.startWarm(ctx, job, python, key, deadline, log)
	}
	p.mu.Lock()
	if p.closed && !slot.t.retired { // Shutdown came during the start: no more forks
		p.retireTemplate(key, slot.t, "worker stopping")
	}
	p.mu.Unlock()
	return w, nil, nil
}

// slotFor returns key's template slot, making one (found false: the caller starts the template) if there is
// none or its template is gone; closed says the pool is shut down.
func (p *warmPool) slotFor(key string) (slot *templateSlot, found, closed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, false, true
	}
	if s := p.templates[key]; s != nil {
		if s.t == nil || !s.t.gone() {
			return s, true, false
		}
		p.retireTemplate(key, s.t, "exited")
	}
	s := &templateSlot{ready: make(chan struct{})}
	p.templates[key] = s
	return s, false, false
}

// gone says whether the template has exited or closed its control socket.
func (t *template) gone() bool {
	select {
	case <-t.dead:
		return true
	case <-t.w.exited:
		return true
	default:
		return false
	}
}

// newTemplate makes w, a runner that answered as a template, one: its control socket, its serving pid and
// the reader of its answers.
func (r *Runner) newTemplate(w *warmProc, ctl *os.File) error {
	c, err := net.FileConn(ctl)
	if err != nil {
		return err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		_ = c.Close()
		return errors.New("the template's control socket is not a Unix socket")
	}
	serving := w.pid
	if r.contain.pidns {
		if serving, ok = firstChild(w.pid); !ok {
			_ = uc.Close()
			return errors.New("the template's interpreter is not running")
		}
	}
	t := &template{w: w, ctl: uc, serving: serving, created: time.Now(), byNSPid: map[int]*forkedChild{},
		early: map[int]syscall.WaitStatus{}, dead: make(chan struct{})}
	w.tmpl = t
	// The template's memory counts against the blocking runs' budget while it lives; its children are
	// charged what they add (Runner.blockingCharge).
	var rr rssReader
	rss, _ := rr.read(serving, false)
	rr.close()
	// Held as the template runner's charge, it is given back when the process has ended, before w.gone
	// (released), so Shutdown returns with the budget empty.
	if rss > 0 {
		w.holdCharge(r.blocking, r.blocking.reserve(rss), rss)
	}
	go t.read()
	go func() {
		<-w.exited
		_ = uc.Close() // ends read
	}()
	return nil
}

// blockingCharge is what a blocking run of job (of warm key key) is charged against the memory budget: for
// a runner forked from a template whose children have been measured, what they were measured to add
// (forkCharge); otherwise RUNNER_MEMORY_MB.
func (r *Runner) blockingCharge(job Job, key string) int64 {
	if !r.forks(job, key) {
		return r.runnerMemory()
	}
	r.warm.mu.Lock()
	s := r.warm.templates[key]
	r.warm.mu.Unlock()
	if s == nil || s.t == nil {
		return r.runnerMemory()
	}
	return forkCharge(s.t.childMemory.Load(), r.runnerMemory())
}

// measureForked measures the private memory of w, a forked runner that has just served a call and is rss
// bytes resident, charges w what it was measured to hold, and raises its template's childMemory to it:
// on its first call, when it grew by forkRegrowth since it was last measured, and otherwise at most every
// forkSampleEvery for all the template's children.
func (r *Runner) measureForked(w *warmProc, rss int64) {
	t := w.child.t
	now := time.Now().UnixNano()
	last := t.lastSample.Load()
	grew := rss > w.measuredAt+forkRegrowth
	if w.served > 1 && !grew && (now-last < int64(forkSampleEvery) || !t.lastSample.CompareAndSwap(last, now)) {
		return
	}
	t.lastSample.Store(now)
	w.measuredAt = rss
	private, ok := privateBytes(w.pid)
	if !ok {
		return
	}
	// The runner is charged what it was measured to hold: less than its start's estimate, given back to
	// the runs waiting for memory, or more (past the budget if need be: the memory is in use), so that new
	// runners wait, or stop idle ones, until it is given back.
	w.setCharge(forkCharge(private, r.runnerMemory()))
	for {
		old := t.childMemory.Load()
		if private <= old {
			return
		}
		if t.childMemory.CompareAndSwap(old, private) {
			w.log.Debug("a forked runner's private memory, measured after a call, is its script's largest yet", "private_bytes", private,
				"charge_bytes", forkCharge(private, r.runnerMemory()), "served", w.served)
			return
		}
	}
}

// read dispatches the template's messages until its control socket ends: the children's answers to forks
// and the template's reports of their statuses.
func (t *template) read() {
	buf := make([]byte, 256)
	oob := make([]byte, 256)
	var why error
	for {
		n, oobn, _, _, err := t.ctl.ReadMsgUnix(buf, oob)
		if err == nil && n == 0 {
			err = errors.New("the template closed its control socket")
		}
		if err != nil {
			why = err
			break
		}
		pid, hasPid := senderPid(oob[:oobn])
		msg := buf[:n]
		t.mu.Lock()
		switch {
		case !hasPid:
		case pid == t.serving && bytes.HasPrefix(msg, []byte("exit ")):
			t.reported(msg)
		case pid == t.serving:
			if t.pending != nil { // the template could not fork
				t.pending.got <- forkAnswer{err: fmt.Errorf("the template: %s", bytes.ToValidUTF8(msg, nil))}
				t.pending = nil
			}
		case t.pending != nil && string(msg) == t.pending.nonce:
			t.pending.got <- forkAnswer{pid: pid}
			t.pending = nil
		}
		// Anything else is the late answer of a fork that was given up on (the child reads EOF and ends)
		// or a message a child forged: both are dropped.
		t.mu.Unlock()
	}
	t.mu.Lock()
	t.deadErr = why
	if t.pending != nil {
		t.pending.got <- forkAnswer{err: fmt.Errorf("the template is gone: %w", why)}
		t.pending = nil
	}
	close(t.dead)
	t.mu.Unlock()
}

// reported records "exit <pid> <status>" (t.mu held).
func (t *template) reported(msg []byte) {
	f := bytes.Fields(msg)
	if len(f) != 3 {
		return
	}
	nspid, err1 := strconv.Atoi(string(f[1]))
	status, err2 := strconv.Atoi(string(f[2]))
	if err1 != nil || err2 != nil {
		return
	}
	ws := syscall.WaitStatus(status)
	if c := t.byNSPid[nspid]; c != nil {
		delete(t.byNSPid, nspid)
		c.status = ws
		close(c.reported)
		return
	}
	if len(t.early) < 1024 {
		t.early[nspid] = ws
	}
}

// register records a live child by its pid in the template's namespace, taking a status reported early.
func (t *template) register(nspid int) *forkedChild {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := &forkedChild{t: t, reported: make(chan struct{})}
	if ws, ok := t.early[nspid]; ok {
		delete(t.early, nspid)
		c.status = ws
		close(c.reported)
		return c
	}
	t.byNSPid[nspid] = c
	return c
}

// ask sends a fork request (the child's nonce and folder, and its descriptors) and waits for the child's pid.
func (t *template) ask(nonce, folder string, files []*os.File, deadline time.Time) (int, error) {
	t.forkMu.Lock()
	defer t.forkMu.Unlock()
	got := make(chan forkAnswer, 1)
	t.mu.Lock()
	select {
	case <-t.dead:
		t.mu.Unlock()
		return 0, fmt.Errorf("the template is gone: %w", t.deadErr)
	default:
	}
	t.pending = &pendingFork{nonce: nonce, got: got}
	t.mu.Unlock()
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd()) // blocking, as a runner's descriptors are
	}
	_ = t.ctl.SetWriteDeadline(deadline)
	if _, _, err := t.ctl.WriteMsgUnix([]byte(nonce+folder), syscall.UnixRights(fds...), nil); err != nil {
		t.mu.Lock()
		t.pending = nil
		t.mu.Unlock()
		return 0, fmt.Errorf("send the fork request: %w", err)
	}
	late := time.NewTimer(time.Until(deadline))
	defer late.Stop()
	select {
	case a := <-got:
		return a.pid, a.err
	case <-late.C:
		t.mu.Lock()
		t.pending = nil
		t.mu.Unlock()
		return 0, errors.New("the template did not fork within its bound")
	}
}

// fork starts a one-call runner from t for job.
func (r *Runner) fork(t *template, job Job, deadline time.Time, log *slog.Logger) (*warmProc, error) {
	r.warm.startsUnderWay.Add(1)
	defer r.warm.startsUnderWay.Add(-1)
	begun := time.Now()
	p, err := newPipes()
	if err != nil {
		return nil, err
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		p.close()
		return nil, err
	}
	tw := t.w
	w := &warmProc{
		key: tw.key, script: tw.script, reqW: reqW, resF: p.resultR, res: bufio.NewReader(p.resultR),
		runDir: tw.runDir, group: &group{}, exited: make(chan struct{}), gone: make(chan struct{}), log: tw.log,
		nonce: newNonce(), maxResult: tw.maxResult, start: tw.start,
	}
	// The child's own folder, inside the template's run folder (which its mount namespace shows): its working
	// folder, HOME and TMPDIR, removed when it ends.
	folder := filepath.Join(tw.runDir, "call-"+newNonce()[:16])
	pid, err := t.ask(w.nonce, folder, []*os.File{p.stdoutW, p.stderrW, p.resultW, reqR}, earlier(deadline, time.Now().Add(forkTimeout)))
	closeAll(p.stdinR, p.stdinW, p.stdoutW, p.stderrW, p.resultW, reqR)
	fail := func(err error) (*warmProc, error) {
		closeAll(p.stdoutR, p.stderrR, p.resultR, reqW)
		return nil, err
	}
	if err != nil {
		return fail(err)
	}
	// The pid is the kernel's word for the process that answered: check that it is a child of the template
	// that leads a session of its own, and pin it (a pidfd) before anything signals its group.
	pidfd, nspid, err := pinChild(pid, t.serving)
	if err != nil {
		return fail(err)
	}
	w.pid = pid
	w.child = t.register(nspid)
	r.warm.mu.Lock()
	t.children++
	t.lastFork = time.Now()
	r.warm.forked[w] = struct{}{}
	r.warm.mu.Unlock()
	registerChild(pid) // session mode: if the template dies, the sweep leaves its children to their runs
	w.out = newOutputRouter(w.log, r.cfg.MaxOutputBytes)
	go func() {
		waitPidfd(pidfd)
		w.group.exited(pid)
		_ = syscall.Close(pidfd)
		forgetChild(pid)
		r.sweepForked(w.log, pid, t)
		select { // the template reports the status at once, unless it is gone too
		case <-w.child.reported:
		case <-t.dead:
		case <-time.After(time.Second):
		}
		closeAll(reqW)
		r.released(w, p, folder)
		r.warm.childEnded(t)
		r.warm.mu.Lock()
		delete(r.warm.forked, w)
		r.warm.mu.Unlock()
	}()
	w.consumeOutput(p)
	w.out.begin(log)
	body, res, err := r.readFrame(context.Background(), w, deadline, job)
	if err == nil && res == nil {
		if doc, ok := bytes.CutPrefix(body, []byte(w.nonce)); !ok || string(doc) != `{"ready":true,"async":false}` {
			err = errors.New("the forked runner's ready frame is not its own")
		}
	} else if err == nil {
		err = fmt.Errorf("the forked runner ended before it was ready: %s", res.Err.Message)
	}
	if err != nil {
		w.kill("failed to start")
		w.out.end(context.Background())
		return nil, err
	}
	w.startTook = time.Since(begun)
	return w, nil
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// sweepForked ends what a forked runner left: the rest of its session, and under a PID namespace the
// processes that left it (orphans the namespace's init adopted; the template's own children are runners).
func (r *Runner) sweepForked(log *slog.Logger, pid int, t *template) {
	n := killSession(pid)
	if r.contain.pidns {
		n += killAdopted(t.w.pid, t.serving)
	}
	if n > 0 {
		log.Warn("killed processes a forked runner's script left behind", "processes", n)
	}
}

// childEnded counts a forked runner's end, and stops its template if that was the last child of a retired
// one.
func (p *warmPool) childEnded(t *template) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t.children--
	if t.children == 0 && (p.closed || t.retired) {
		p.killTemplate(t, "retired, and its last runner has ended")
	}
}

// retireTemplate takes t out of the pool (no more forks) and kills it once it has no children
// (p.mu held).
func (p *warmPool) retireTemplate(key string, t *template, why string) {
	if s := p.templates[key]; s != nil && s.t == t {
		delete(p.templates, key)
	}
	t.retired = true
	if t.children == 0 {
		p.killTemplate(t, why)
	}
}

// killTemplate stops t's process (p.mu held).
func (p *warmPool) killTemplate(t *template, why string) {
	t.w.kill(why)
	_ = t.ctl.Close()
}

// reapTemplates retires templates that are gone, idle past IdleTimeout, or of an older version of a script
// that has a newer template (p.mu held).
func (p *warmPool) reapTemplates() {
	newest := map[string]time.Time{}
	for _, s := range p.templates {
		if s.t != nil && s.t.created.After(newest[s.t.w.script]) {
			newest[s.t.w.script] = s.t.created
		}
	}
	for key, s := range p.templates {
		t := s.t
		if t == nil {
			continue
		}
		select {
		case <-t.w.exited:
			p.retireTemplate(key, t, "exited")
			continue
		default:
		}
		last := t.created
		if t.lastFork.After(last) {
			last = t.lastFork
		}
		idle := time.Since(last) > p.cfg.IdleTimeout
		if t.children == 0 && (idle || t.created.Before(newest[t.w.script])) {
			p.retireTemplate(key, t, "idle")
		}
	}
}

// closeTemplates retires every template at Shutdown and returns their processes: those without children
// stop now, the others once their last child has ended (p.mu held).
func (p *warmPool) closeTemplates() []*warmProc {
	var procs []*warmProc
	for key, s := range p.templates {
		if s.t != nil {
			procs = append(procs, s.t.w)
			p.retireTemplate(key, s.t, "worker stopping")
		}
	}
	return procs
}
