package localedge

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scrapeplatform/platform/functions/gateway"
	"github.com/scrapeplatform/platform/shared/contract"
)

// Metrics are the local gateway's Prometheus metrics, recorded through gateway.Recorder.
type Metrics struct {
	HTTPRequests   *prometheus.CounterVec
	HTTPDuration   *prometheus.HistogramVec
	ScrapeOutcomes *prometheus.CounterVec
	RepliesDropped *prometheus.CounterVec
	JobsAccepted   *prometheus.CounterVec
	Connected      prometheus.Gauge
	Connects       prometheus.Counter
}

var _ gateway.Recorder = (*Metrics)(nil)

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scraping_gateway_http_requests_total",
			Help: "HTTP requests answered by the gateway, by route and status code.",
		}, []string{"route", "code"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scraping_gateway_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 25, 60},
		}, []string{"route"}),
		ScrapeOutcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scraping_gateway_scrapes_total",
			Help: "Scrapes seen by the gateway, by outcome (completed, failed, timeout, broker_unavailable, no_worker_response, queue_full).",
		}, []string{"outcome"}),
		RepliesDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scraping_rpc_replies_dropped_total",
			Help: "Replies that matched no waiting request: late (the caller had given up) or unknown.",
		}, []string{"reason"}),
		JobsAccepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scraping_gateway_jobs_accepted_total",
			Help: "Scrapes recorded as jobs, by how they were answered: sync (200 within the sync window) or async (202).",
		}, []string{"mode"}),
		Connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scraping_gateway_broker_connected",
			Help: "1 while the gateway's AMQP connection is up.",
		}),
		Connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scraping_gateway_broker_connects_total",
			Help: "AMQP connections the gateway established; more than one means reconnects.",
		}),
	}
	reg.MustRegister(m.HTTPRequests, m.HTTPDuration, m.ScrapeOutcomes, m.RepliesDropped, m.JobsAccepted, m.Connected, m.Connects)
	// Every known label value exists from the start at 0, so rates and alert ratios have a series to work on
	// before the first event of its kind (a series that appears at 1 hides its first increase from rate()).
	for _, o := range []contract.Status{contract.StatusCompleted, contract.StatusFailed, contract.StatusTimeout, "broker_unavailable", "no_worker_response", "queue_full"} {
		m.ScrapeOutcomes.WithLabelValues(string(o))
	}
	for _, mode := range []string{gateway.ModeSync, gateway.ModeAsync} {
		m.JobsAccepted.WithLabelValues(mode)
	}
	for _, r := range []string{"late", "unknown"} {
		m.RepliesDropped.WithLabelValues(r)
	}
	return m
}

// ObserveHTTP implements gateway.Recorder.
func (m *Metrics) ObserveHTTP(route string, code int, d time.Duration) {
	m.HTTPRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.HTTPDuration.WithLabelValues(route).Observe(d.Seconds())
}

// ObserveScrape implements gateway.Recorder.
func (m *Metrics) ObserveScrape(outcome contract.Status, _ time.Duration) {
	m.ScrapeOutcomes.WithLabelValues(string(outcome)).Inc()
}

// ReplyDropped implements gateway.Recorder.
func (m *Metrics) ReplyDropped(reason string) { m.RepliesDropped.WithLabelValues(reason).Inc() }

// JobAccepted implements gateway.Recorder.
func (m *Metrics) JobAccepted(mode string) { m.JobsAccepted.WithLabelValues(mode).Inc() }

// BrokerHooks returns callbacks for broker.RPCConfig's OnConnect, OnDisconnect and OnDrop.
func (m *Metrics) BrokerHooks() (onConnect func(), onDisconnect func(error), onDrop func(string)) {
	if m == nil {
		return nil, nil, nil
	}
	return func() { m.Connected.Set(1); m.Connects.Inc() },
		func(error) { m.Connected.Set(0) },
		m.ReplyDropped
}
