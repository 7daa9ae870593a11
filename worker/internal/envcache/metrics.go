package envcache

import "time"

// Metrics records the cache's work. The worker's edge implements it with Prometheus (the telemetry
// package); Config.Metrics nil records nothing.
type Metrics interface {
	// EnvBuilt counts one build with its outcome ("ok" or "failed") and how long it took.
	EnvBuilt(outcome string, d time.Duration)
	// EnvHit counts a use of a ready environment.
	EnvHit()
}

// callbackMetrics adapts the deprecated Config.OnBuild and Config.OnHit; with both nil it records nothing.
type callbackMetrics struct {
	onBuild func(outcome string, d time.Duration)
	onHit   func()
}

func (m callbackMetrics) EnvBuilt(outcome string, d time.Duration) {
	if m.onBuild != nil {
		m.onBuild(outcome, d)
	}
}

func (m callbackMetrics) EnvHit() {
	if m.onHit != nil {
		m.onHit()
	}
}
