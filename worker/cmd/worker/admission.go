package main

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/scrapeplatform/platform/shared/sysstat"
	"github.com/scrapeplatform/platform/worker/internal/admission"
	"github.com/scrapeplatform/platform/worker/internal/telemetry"
)

// loadSampler measures the admission controller's signals: CPU and memory of the worker's cgroup (else the
// machine's), the shared runners' event-loop lag, the scrapes in flight and the warm runners started.
type loadSampler struct {
	sys      *sysstat.Sampler
	lag      func() time.Duration
	inFlight func() int
	starts   func() int // warm runners started since the last call or still starting (nil: none counted)
	// own measures the worker's own process tree (nil: not measured, counted as all of the CPU).
	own *treeCPU
}

// treeCPU turns the worker's tree's cumulative CPU time into a share of the CPUs available between samples.
type treeCPU struct {
	pid      int
	cpus     float64
	lastSecs float64
	lastAt   time.Time
}

func newTreeCPU(sys *sysstat.Sampler) *treeCPU {
	cpus := sys.CPUs()
	if cpus <= 0 {
		cpus = float64(runtime.NumCPU())
	}
	return &treeCPU{pid: os.Getpid(), cpus: cpus}
}

func (t *treeCPU) share(sys *sysstat.Sampler) float64 {
	secs, err := sys.TreeCPUSeconds(t.pid)
	now := time.Now()
	if err != nil {
		return 1 // unknown: do not excuse a high CPU reading
	}
	share := 0.0
	if !t.lastAt.IsZero() {
		if wall := now.Sub(t.lastAt).Seconds(); wall > 0 {
			share = (secs - t.lastSecs) / (wall * t.cpus)
		}
	}
	t.lastSecs, t.lastAt = secs, now
	return share
}

// Sample implements admission.Sampler.
func (s loadSampler) Sample() (admission.Signals, error) {
	cpu, err := s.sys.CPUPercent()
	if err != nil {
		return admission.Signals{}, err
	}
	mem, err := s.sys.MemoryPercent()
	if err != nil {
		return admission.Signals{}, err
	}
	own := 1.0
	if s.own != nil {
		own = s.own.share(s.sys)
	}
	starts := 0
	if s.starts != nil {
		starts = s.starts()
	}
	return admission.Signals{CPU: cpu / 100, OwnCPU: own, Memory: mem / 100, LoopLag: s.lag(), InFlight: s.inFlight(),
		RunnersStarted: starts}, nil
}

// runAdmission steps the controller every second until ctx ends and applies each new capacity: the
// consumer's prefetch (so the worker never holds deliveries it cannot start soon) and the metrics.
func runAdmission(ctx context.Context, ctrl *admission.Controller, s admission.Sampler, setPrefetch func(int) error,
	m *telemetry.Admission, log *slog.Logger) {
	ctrl.Run(ctx, s, func(n int) {
		_, state, reason := ctrl.Capacity()
		if err := setPrefetch(n); err != nil {
			log.Warn("admission: could not change the consumer's prefetch", "capacity", n, "error", err)
		}
		m.Set(n, string(state))
		log.Debug("admission", "capacity", n, "state", state, "reason", reason)
	})
}
