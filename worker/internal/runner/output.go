package runner

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"unicode/utf8"
)

// Bounds on what one run's output may cost. The pipes are always drained; these only limit what is kept.
const (
	logBudgetBytes  = 256 << 10 // logged per run, both streams together; later lines are counted, not logged
	maxLogLineBytes = 4 << 10   // a longer line is cut when logged (the tail keeps it whole)
	readBufferBytes = 64 << 10  // longest line fragment read at once
)

// output collects a run's stdout and stderr: it logs each line, within a budget, and keeps the last
// tailCap bytes of both streams, interleaved as they arrived.
type output struct {
	log     *slog.Logger
	tailCap int

	mu           sync.Mutex
	buf          []byte // the tail; trimmed to tailCap whenever it reaches twice that
	logged       int
	overBudget   bool
	droppedLines int
	droppedBytes int
}

func newOutput(log *slog.Logger, tailCap int) *output {
	return &output{log: log, tailCap: tailCap}
}

// consume reads stream until EOF or error (a read deadline included).
func (o *output) consume(ctx context.Context, stream string, r io.Reader) {
	br := bufio.NewReaderSize(r, readBufferBytes)
	continued := false // the previous fragment did not end its line
	for {
		fragment, err := br.ReadSlice('\n')
		if len(fragment) > 0 {
			o.add(ctx, stream, fragment, continued)
			continued = fragment[len(fragment)-1] != '\n'
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// add keeps fragment in the tail and logs it if it starts a line. The rest of an overlong line goes to the
// tail only.
func (o *output) add(ctx context.Context, stream string, fragment []byte, continued bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.keep(fragment)
	if continued {
		return
	}
	line := bytes.TrimRight(fragment, "\r\n")
	cut := fragment[len(fragment)-1] != '\n' // the line goes on beyond this fragment
	if len(line) > maxLogLineBytes {
		line, cut = line[:maxLogLineBytes], true
	}
	if o.logged+len(line) > logBudgetBytes {
		if !o.overBudget {
			o.overBudget = true
			o.log.WarnContext(ctx, "script output exceeds the per-run log budget; further lines are not logged",
				"budget_bytes", logBudgetBytes)
		}
		o.droppedLines++
		o.droppedBytes += len(fragment)
		return
	}
	o.logged += len(line)
	attrs := []slog.Attr{slog.String("stream", stream), slog.String("line", string(line))}
	if cut {
		attrs = append(attrs, slog.Bool("cut", true))
	}
	o.log.LogAttrs(ctx, slog.LevelInfo, "script output", attrs...)
}

func (o *output) keep(p []byte) {
	if len(p) >= o.tailCap {
		o.buf = append(o.buf[:0], p[len(p)-o.tailCap:]...)
		return
	}
	o.buf = append(o.buf, p...)
	if len(o.buf) >= 2*o.tailCap {
		n := copy(o.buf, o.buf[len(o.buf)-o.tailCap:])
		o.buf = o.buf[:n]
	}
}

// finish logs how much output was not logged. Call it after every consume has returned.
func (o *output) finish(ctx context.Context) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.droppedLines > 0 {
		o.log.WarnContext(ctx, "script output was truncated in the log",
			"dropped_lines", o.droppedLines, "dropped_bytes", o.droppedBytes)
	}
}

// tail returns the last tailCap bytes of output as valid UTF-8.
func (o *output) tail() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	b := o.buf
	if len(b) > o.tailCap {
		b = b[len(b)-o.tailCap:]
	}
	// Do not start in the middle of a character that the cut split.
	for i := 0; i < utf8.UTFMax-1 && len(b) > 0 && !utf8.RuneStart(b[0]); i++ {
		b = b[1:]
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
