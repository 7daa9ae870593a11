// Package testlog gives tests a slog.Logger that writes to t.Log.
//
// Goroutines of the code under test (a session's redial loop, a runner's reaper) may still log after the
// test has ended, and t.Log then races with the end of the test (the race detector fails the run, or the
// test panics with "Log in goroutine after Test... has completed"). The logger drops lines once the test's
// cleanups have started to run its own.
package testlog

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// New returns a text logger at level that writes to t.Log until t's cleanups run.
func New(t testing.TB, level slog.Level) *slog.Logger {
	w := &writer{t: t}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type writer struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *writer) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}
