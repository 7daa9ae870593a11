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

// nopMetrics records nothing: the Metrics of a Config without one.
type nopMetrics struct{}

func (nopMetrics) EnvBuilt(string, time.Duration) {}
func (nopMetrics) EnvHit()                        {}
