package runner

import (
	"io"
	"os"
	"sync"
	"syscall"
	"time"
)

// group is the child's process group (pgid = the child's pid) and why Run killed it, if it did.
//
// The lock orders the two ways the group is killed: cancel (ctx ended, timeout, result overflow), called by
// os/exec at any time until Wait returns, and exited, called once the child has exited but before it is
// reaped. After exited the group is never signalled again, so a recycled pgid cannot be hit.
type group struct {
	mu   sync.Mutex
	done bool  // the child has exited and the group has had its final kill
	why  error // why the group was killed while the child still ran; nil if the child exited on its own
}

// cancel kills the group for cause, unless the child has already exited. It is the cmd.Cancel of the child.
func (g *group) cancel(pid int, cause error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return os.ErrProcessDone
	}
	if g.why == nil {
		g.why = cause
	}
	killGroup(pid)
	return nil
}

// exited kills whatever the child left in its group, once.
func (g *group) exited(pid int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.done {
		killGroup(pid)
		g.done = true
	}
}

// cause reports why Run killed the group before the child exited, or nil.
func (g *group) cause() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.why
}

// killGroup sends SIGKILL to the process group pgid. An empty group (ESRCH) is not an error worth reporting.
func killGroup(pgid int) {
	if pgid > 0 {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

// isKill reports whether sig is SIGKILL, which is what the kernel's OOM killer sends.
func isKill(sig syscall.Signal) bool { return sig == syscall.SIGKILL }

// pipes are the child's stdin, stdout, stderr and result channel (fd 3). They are plain os.Pipe pairs rather
// than pipes managed by os/exec, so cmd.Wait does not wait for them: a grandchild holding a write end cannot
// delay the run past the group kill.
type pipes struct {
	stdinR, stdinW   *os.File
	stdoutR, stdoutW *os.File
	stderrR, stderrW *os.File
	resultR, resultW *os.File
}

func newPipes() (*pipes, error) {
	p := &pipes{}
	for _, pair := range []struct{ r, w **os.File }{
		{&p.stdinR, &p.stdinW},
		{&p.stdoutR, &p.stdoutW},
		{&p.stderrR, &p.stderrW},
		{&p.resultR, &p.resultW},
	} {
		r, w, err := os.Pipe()
		if err != nil {
			p.close()
			return nil, err
		}
		*pair.r, *pair.w = r, w
	}
	return p, nil
}

// closeChildEnds closes the worker's copies of the ends the child uses, so the worker sees EOF once every
// process holding them is gone.
func (p *pipes) closeChildEnds() {
	closeAll(p.stdinR, p.stdoutW, p.stderrW, p.resultW)
}

// setDeadline bounds every pending read and write of the worker's ends.
func (p *pipes) setDeadline(t time.Time) {
	_ = p.stdinW.SetWriteDeadline(t)
	for _, f := range []*os.File{p.stdoutR, p.stderrR, p.resultR} {
		_ = f.SetReadDeadline(t)
	}
}

func (p *pipes) close() {
	closeAll(p.stdinR, p.stdinW, p.stdoutR, p.stdoutW, p.stderrR, p.stderrW, p.resultR, p.resultW)
}

func closeAll(files ...*os.File) {
	for _, f := range files {
		if f != nil {
			_ = f.Close() // a second Close reports os.ErrClosed, which is harmless here
		}
	}
}

// readResultDoc reads the result channel to EOF, but no more than limit bytes. It reports overflow instead
// of a document when the channel carries more, and stops reading: the caller kills the group.
//
// A job's result may be 100 MiB: the document is read in chunks of at most resultChunk bytes and joined
// once, so reading N bytes allocates about 2N (io.ReadAll's growth by a quarter at a time allocated about
// 3.4N for 100 MiB) and keeps N.
func readResultDoc(f *os.File, limit int) (doc []byte, overflow bool) {
	// A read error (the deadline, when something that escaped the group holds the pipe) leaves a torn
	// document, which fails to parse and is reported as such.
	r := io.LimitReader(f, int64(limit)+1)
	var chunks [][]byte
	total := 0
	for size := 64 << 10; ; size = min(2*size, resultChunk) {
		chunk := make([]byte, size)
		n, err := io.ReadFull(r, chunk)
		if n > 0 {
			chunks = append(chunks, chunk[:n])
			total += n
		}
		if err != nil {
			break
		}
	}
	if total > limit {
		return nil, true
	}
	if len(chunks) == 1 {
		return chunks[0], false
	}
	doc = make([]byte, 0, total)
	for _, c := range chunks {
		doc = append(doc, c...)
	}
	return doc, false
}

// resultChunk is the largest chunk readResultDoc reads at once.
const resultChunk = 4 << 20
