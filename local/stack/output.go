package stack

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"sync"
)

// maxLineLen bounds one output line; longer lines are split. It keeps a
// child that prints megabytes without a newline from growing our memory.
const maxLineLen = 64 << 10

// maxTailLineLen bounds a line kept for error messages.
const maxTailLineLen = 500

// outputMu serialises whole lines from every process. Processes usually
// share one writer (the terminal, or a test's buffer) that may not be safe
// for concurrent use, and lines must not interleave mid-line.
var outputMu sync.Mutex

// lineWriter copies a child's output to a shared writer line by line, each
// line prefixed with "[name] ", and remembers the last lines.
type lineWriter struct {
	prefix []byte
	out    io.Writer

	mu    sync.Mutex
	lines []string // ring of the last len(lines) lines once full
	next  int
	full  bool
}

func newLineWriter(name string, out io.Writer, keep int) *lineWriter {
	return &lineWriter{prefix: []byte("[" + name + "] "), out: out, lines: make([]string, keep)}
}

// copyFrom reads r until EOF or an error, writing each line (and a final
// line without a newline) with the prefix. Write errors are ignored so that
// the child never blocks on a full pipe because the terminal went away.
func (w *lineWriter) copyFrom(r io.Reader) {
	br := bufio.NewReaderSize(r, maxLineLen)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			w.writeLine(line)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func (w *lineWriter) writeLine(line []byte) {
	body := bytes.TrimRight(line, "\r\n")
	buf := make([]byte, 0, len(w.prefix)+len(body)+1)
	buf = append(buf, w.prefix...)
	buf = append(buf, body...)
	buf = append(buf, '\n')
	outputMu.Lock()
	_, _ = w.out.Write(buf)
	outputMu.Unlock()

	kept := body
	if len(kept) > maxTailLineLen {
		kept = append(kept[:maxTailLineLen:maxTailLineLen], "…"...)
	}
	w.mu.Lock()
	w.lines[w.next] = string(kept)
	w.next = (w.next + 1) % len(w.lines)
	if w.next == 0 {
		w.full = true
	}
	w.mu.Unlock()
}

// tail returns the remembered lines, oldest first.
func (w *lineWriter) tail() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.full {
		return append([]string(nil), w.lines[:w.next]...)
	}
	out := make([]string, 0, len(w.lines))
	out = append(out, w.lines[w.next:]...)
	return append(out, w.lines[:w.next]...)
}
