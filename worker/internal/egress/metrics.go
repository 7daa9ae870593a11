package egress

// Metrics records the proxy's decisions. The worker's edge implements it with Prometheus (the telemetry
// package); Config.Metrics nil records nothing.
type Metrics interface {
	// EgressDecision is called for every decision: allowed (once per upstream connection the proxy opens,
	// which a kept-alive connection reuses for several requests) or refused (once per request), with the
	// reason when refused: "private", "resolve", "bad_request", or "limit" (a connection turned away because
	// the proxy had Config.MaxConns open).
	EgressDecision(allowed bool, reason string)
}

// nopMetrics records nothing.
type nopMetrics struct{}

func (nopMetrics) EgressDecision(bool, string) {}
