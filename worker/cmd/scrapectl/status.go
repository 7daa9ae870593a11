package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// statusLine shows where a job is while scrapectl waits for it: on a terminal one line redrawn in place
// ("job 3f… running  12.4s"), elsewhere a plain line per change of status. Safe for concurrent use.
type statusLine struct {
	w  io.Writer
	on bool // redraw in place

	mu      sync.Mutex
	text    string
	drawn   bool
	printed string // the last plain line
}

// newStatusLine: mode auto draws in place when w is a terminal; always and never force it.
func newStatusLine(w io.Writer, mode string) *statusLine {
	on := mode == "always"
	if mode == "auto" || mode == "" {
		on = isTerminal(w)
	}
	return &statusLine{w: w, on: on}
}

func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// show sets the text and draws it (off a terminal: prints it if it changed).
func (l *statusLine) show(text string, elapsed time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.text = text
	if !l.on {
		if text != l.printed {
			fmt.Fprintf(l.w, "%s (%.1fs)\n", text, elapsed.Seconds())
			l.printed = text
		}
		return
	}
	l.drawLocked(elapsed)
}

// redraw refreshes the elapsed time on a terminal.
func (l *statusLine) redraw(elapsed time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.on && l.text != "" {
		l.drawLocked(elapsed)
	}
}

func (l *statusLine) drawLocked(elapsed time.Duration) {
	fmt.Fprintf(l.w, "\r\033[K%s  %s", l.text, formatElapsed(elapsed))
	l.drawn = true
}

// note prints a message on its own line, then the status line again.
func (l *statusLine) note(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.drawn {
		fmt.Fprint(l.w, "\r\033[K")
	}
	fmt.Fprintln(l.w, strings.TrimSpace(msg))
	if l.on && l.text != "" {
		fmt.Fprint(l.w, l.text)
	}
}

// done ends the status line, leaving the last state on screen.
func (l *statusLine) done() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.drawn {
		fmt.Fprintln(l.w)
		l.drawn = false
	}
}

func formatElapsed(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	d = d.Round(time.Second)
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}
