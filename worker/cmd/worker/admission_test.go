package main

import (
	"context"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scrapeplatform/platform/shared/sysstat"
	"github.com/scrapeplatform/platform/worker/internal/admission"
	"github.com/scrapeplatform/platform/worker/internal/telemetry"
)

// Under a real CPU hog (spinning goroutines on every core) the worker's sampler reads the load and the
// controller backs off, applying a lower capacity to the consumer's prefetch; with the hog gone and a full
// pipeline (fake demand, real CPU readings), it grows again.
func TestAdmissionBacksOffUnderACPUHog(t *testing.T) {
	ctrl := admission.New(admission.Config{Ceiling: 256, Initial: 64, Floor: 4, Interval: 200 * time.Millisecond})
	var inFlight atomic.Int64
	inFlight.Store(64)
	sys := &sysstat.Sampler{Window: time.Minute}
	s := loadSampler{sys: sys, lag: func() time.Duration { return 0 }, inFlight: func() int { return int(inFlight.Load()) },
		own: newTreeCPU(sys)} // the hog runs in this process: it is the worker's own load
	var mu sync.Mutex
	var applied []int
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := telemetry.NewAdmission(prometheus.NewRegistry())
	go runAdmission(ctx, ctrl, s, func(n int) error {
		mu.Lock()
		applied = append(applied, n)
		mu.Unlock()
		inFlight.Store(int64(n)) // demand always fills the capacity
		return nil
	}, m, slog.New(slog.DiscardHandler))

	stop := make(chan struct{})
	var hog sync.WaitGroup
	for range 2 * runtime.NumCPU() {
		hog.Add(1)
		go func() {
			defer hog.Done()
			for n := 0; ; n++ {
				if n%1_000_000 == 0 {
					select {
					case <-stop:
						return
					default:
					}
				}
			}
		}()
	}
	backedOff := waitState(t, ctrl, admission.BackingOff, time.Minute)
	close(stop)
	hog.Wait()
	if !backedOff {
		t.Fatal("the controller never backed off while every core was spinning")
	}
	low, _, _ := ctrl.Capacity()
	mu.Lock()
	last, peak := applied[len(applied)-1], slices.Max(applied)
	mu.Unlock()
	// The hog may take a few readings to show on a loaded machine, while the controller still grows: the
	// back-off is measured from the highest capacity it reached.
	if low >= max(peak, 64) || last != low {
		t.Fatalf("capacity %d after backing off (started at 64, highest applied %d), last applied %d", low, peak, last)
	}
	// The load is gone: with demand filling it, the capacity grows again (a loaded CI machine may take a
	// while to read below the bound; the deadline is generous and no figure is asserted).
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if n, _, _ := ctrl.Capacity(); n > low {
			return
		}
		if time.Now().After(deadline) {
			_, state, reason := ctrl.Capacity()
			t.Fatalf("capacity stayed at %d two minutes after the hog stopped (state %s: %s)", low, state, reason)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitState(t *testing.T, ctrl *admission.Controller, want admission.State, within time.Duration) bool {
	t.Helper()
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if _, state, _ := ctrl.Capacity(); state == want {
			return true
		}
	}
	return false
}

// The sampler hands the controller the warm runners started since its last sample.
func TestLoadSamplerTakesTheRunnerStarts(t *testing.T) {
	starts := []int{3, 0}
	s := loadSampler{sys: &sysstat.Sampler{}, lag: func() time.Duration { return 0 }, inFlight: func() int { return 5 },
		starts: func() int { n := starts[0]; starts = starts[1:]; return n }}
	for _, want := range []int{3, 0} {
		sig, err := s.Sample()
		if err != nil {
			t.Fatal(err)
		}
		if sig.RunnersStarted != want || sig.InFlight != 5 {
			t.Fatalf("signals %+v, want %d runners started and 5 in flight", sig, want)
		}
	}
}
