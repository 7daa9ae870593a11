package egress

import "github.com/prometheus/client_golang/prometheus"

// NewMetrics registers scraping_egress_requests_total{decision, reason} on reg and returns the function to
// pass as Config.OnDecision. Allowed decisions are counted per connection the proxy opens (a kept-alive
// connection serves several requests), refusals per request.
func NewMetrics(reg prometheus.Registerer) func(allowed bool, reason string) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scraping_egress_requests_total",
		Help: "Requests of scripts through the egress proxy: decision allowed (per upstream connection) or refused (reason private, resolve, bad_request).",
	}, []string{"decision", "reason"})
	reg.MustRegister(c)
	c.WithLabelValues("allowed", "").Add(0)
	c.WithLabelValues("refused", "private").Add(0)
	return func(allowed bool, reason string) {
		if allowed {
			c.WithLabelValues("allowed", "").Inc()
			return
		}
		c.WithLabelValues("refused", reason).Inc()
	}
}
