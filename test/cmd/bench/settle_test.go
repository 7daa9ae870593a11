package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// A settled run measures nothing before its settled function says so: the calls fail until then, and the
// result counts none of those failures, only calls made afterwards.
func TestDriveMeasuresOnceSettled(t *testing.T) {
	var asked atomic.Int64
	var settledNow atomic.Bool
	settled := func() bool {
		if asked.Add(1) >= 2 {
			settledNow.Store(true)
		}
		return settledNow.Load()
	}
	call := func(context.Context) error {
		time.Sleep(time.Millisecond)
		if !settledNow.Load() {
			return errors.New("not settled yet")
		}
		return nil
	}
	r := drive(t.Context(), "settle", 4, 10*time.Millisecond, 50*time.Millisecond, settled, nil, call)
	if r.errs != 0 || r.n == 0 || asked.Load() != 2 {
		t.Fatalf("%d errors, %d calls measured, settled asked %d times; want 0 errors, some calls, asked twice (%v)", r.errs, r.n, asked.Load(), r.firstErrs)
	}
	if r.warm < 10*time.Millisecond {
		t.Fatalf("warm-up %s, shorter than the fixed 10ms", r.warm)
	}
}

// noStartsFor says settled once the workers' start count has not changed for the quiet period, and not
// while it changes or a worker's metrics cannot be read.
func TestNoStartsFor(t *testing.T) {
	var count atomic.Int64
	var broken atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if broken.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "%s_sum 1\n%s_count %d\n", startsMetric, startsMetric, count.Load())
	}))
	defer srv.Close()
	settled := noStartsFor(t.Context(), []string{srv.URL}, 30*time.Millisecond)
	if settled() {
		t.Fatal("settled at the first look")
	}
	for range 5 { // a start every 20 ms: never quiet for 30 ms
		time.Sleep(20 * time.Millisecond)
		count.Add(1)
		if settled() {
			t.Fatal("settled while runners kept starting")
		}
	}
	time.Sleep(40 * time.Millisecond)
	broken.Store(true)
	if settled() {
		t.Fatal("settled without reading the metrics")
	}
	broken.Store(false)
	if !settled() {
		t.Fatal("not settled after 40 ms without a start (quiet: 30 ms)")
	}
}
