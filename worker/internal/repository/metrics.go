package repository

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the script cache's Prometheus metrics. A nil *Metrics records nothing.
type Metrics struct {
	fetches *prometheus.CounterVec
	stales  prometheus.Counter
	damaged prometheus.Counter
}

// NewMetrics registers the script cache's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		fetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scraping_script_fetches_total",
			Help: "Checks of the remote script repository, by result: downloaded, not_modified, not_found, failed.",
		}, []string{"result"}),
		stales: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scraping_script_cache_stale_total",
			Help: "Times a cached script copy was served because the remote repository could not be used.",
		}),
		damaged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scraping_script_cache_damaged_total",
			Help: "Cached script copies found damaged (changed on disk) and downloaded again.",
		}),
	}
	for _, r := range []string{"downloaded", "not_modified", "not_found", "failed"} {
		m.fetches.WithLabelValues(r)
	}
	reg.MustRegister(m.fetches, m.stales, m.damaged)
	return m
}

func (m *Metrics) fetch(result string) {
	if m != nil {
		m.fetches.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) stale() {
	if m != nil {
		m.stales.Inc()
	}
}

func (m *Metrics) corrupt() {
	if m != nil {
		m.damaged.Inc()
	}
}
