package main

// The progress bar is written by hand rather than taken from github.com/schollz/progressbar/v3: all it
// needs is one redrawn line on a terminal, about forty lines of code, while the library would add its
// dependencies (terminal, colour and Unicode-width packages) to the worker module that scrapectl shares.

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// progress shows an upload's progress on a terminal: it counts the request body bytes the HTTP client
// actually sends (the SDK may read the body once more to sign it; that is not progress). Off a terminal it
// prints nothing until the end.
type progress struct {
	w     io.Writer
	on    bool
	total int64
	label string

	mu   sync.Mutex
	sent int64
	last time.Time
	// done is set by finish: the HTTP transport may still read (and count) the body after the response
	// came back, and must not draw after the final line.
	done bool
}

func newProgress(w io.Writer, mode string, total int64) *progress {
	on := mode == "always"
	if mode == "auto" {
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				on = true
			}
		}
	}
	return &progress{w: w, on: on, total: total}
}

func (p *progress) start(label string) {
	p.label = label
	if !p.on {
		fmt.Fprintln(p.w, label)
		return
	}
	p.draw(true)
}

// wrap counts the bytes of PUT request bodies sent through next.
func (p *progress) wrap(next aws.HTTPClient) aws.HTTPClient {
	return clientFunc(func(r *http.Request) (*http.Response, error) {
		if r.Method == http.MethodPut && r.Body != nil && r.Body != http.NoBody {
			p.mu.Lock()
			p.sent = 0 // a retry starts over
			p.mu.Unlock()
			r.Body = &countingBody{ReadCloser: r.Body, p: p}
		}
		return next.Do(r)
	})
}

type clientFunc func(*http.Request) (*http.Response, error)

func (f clientFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

type countingBody struct {
	io.ReadCloser
	p *progress
}

func (c *countingBody) Read(b []byte) (int, error) {
	n, err := c.ReadCloser.Read(b)
	c.p.add(n)
	return n, err
}

func (p *progress) add(n int) {
	p.mu.Lock()
	p.sent = min(p.sent+int64(n), p.total)
	p.mu.Unlock()
	p.draw(false)
}

func (p *progress) draw(force bool) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drawLocked(force)
}

// drawLocked redraws the line (p.mu held).
func (p *progress) drawLocked(force bool) {
	if p.done || !force && time.Since(p.last) < 100*time.Millisecond && p.sent < p.total {
		return
	}
	p.last = time.Now()
	const width = 30
	frac := 1.0
	if p.total > 0 {
		frac = float64(p.sent) / float64(p.total)
	}
	done := int(frac * width)
	bar := strings.Repeat("=", done) + strings.Repeat(" ", width-done)
	fmt.Fprintf(p.w, "\r%s [%s] %3.0f%% %s / %s", p.label, bar, frac*100, humanBytes(p.sent), humanBytes(p.total))
}

func (p *progress) finish(ok bool) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ok {
		p.sent = p.total
	}
	p.drawLocked(true)
	fmt.Fprintln(p.w)
	p.done = true
}
