package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/scrapeplatform/platform/shared/sysstat"
	"github.com/scrapeplatform/platform/worker/internal/admission"
	"github.com/scrapeplatform/platform/worker/internal/telemetry"
)

// loadSampler measures the admission controller's signals: CPU and memory of the worker's cgroup (else the
// machine's), the shared runners' event-loop lag, and the scrapes in flight.
type loadSampler struct {
	sys      *sysstat.Sampler
	lag      func() time.Duration
	inFlight func() int
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
	return admission.Signals{CPU: cpu / 100, Memory: mem / 100, LoopLag: s.lag(), InFlight: s.inFlight()}, nil
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
