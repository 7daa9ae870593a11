package worker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scrapeplatform/platform/worker/internal/runner"
)

// UnknownScript is the script_name label of requests whose script could not be resolved, so that names
// sent by callers cannot blow up the metrics' cardinality.
const UnknownScript = "(unknown)"

// Metrics are the worker's Prometheus metrics. The README's metrics table documents each one.
type Metrics struct {
	Requests         *prometheus.CounterVec
	Duration         *prometheus.HistogramVec
	ScriptRuntime    *prometheus.HistogramVec
	Rejected         *prometheus.CounterVec
	SlotsBusy        prometheus.Gauge
	Slots            prometheus.Gauge
	ReplyFailures    prometheus.Counter
	BrokerConnected  *prometheus.GaugeVec
	Reconnects       *prometheus.CounterVec
	EnvBuilds        *prometheus.CounterVec
	EnvBuildDuration prometheus.Histogram
	EnvCacheHits     prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scraping_requests_total",
			Help: "Scrape requests handled by this worker, by script and outcome (completed, failed, timeout).",
		}, []string{"script_name", "status"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scraping_request_duration_seconds",
			Help:    "Time from receiving a task to publishing its reply, by script.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 25, 60, 120, 300},
		}, []string{"script_name"}),
		ScriptRuntime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scraping_script_runtime_seconds",
			Help:    "Wall-clock run time of the script's child process, by script.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 25, 60, 120, 300},
		}, []string{"script_name"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scraping_tasks_rejected_total",
			Help: "Tasks not run, by reason: invalid (dead-lettered), expired (deadline passed, dead-lettered), requeued (shutdown).",
		}, []string{"reason"}),
		SlotsBusy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scraping_worker_slots_busy",
			Help: "Script slots currently running a task.",
		}),
		Slots: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scraping_worker_slots",
			Help: "Script slots of this worker (WORKER_CONCURRENCY).",
		}),
		ReplyFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scraping_reply_publish_failures_total",
			Help: "Replies that could not be published before the caller's deadline (retried until then; then dropped and the task acked).",
		}),
		BrokerConnected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scraping_broker_connected",
			Help: "1 while the named AMQP connection (consume, publish) is up.",
		}, []string{"connection"}),
		Reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scraping_broker_connects_total",
			Help: "AMQP connections established, by connection; more than one means reconnects.",
		}, []string{"connection"}),
	}
	m.EnvBuilds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scraping_env_builds_total",
		Help: "Dependency environments built for scripts' requirements.txt, by outcome (ok, failed).",
	}, []string{"outcome"})
	m.EnvBuildDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "scraping_env_build_duration_seconds",
		Help:    "Time to build one dependency environment (venv + pip install).",
		Buckets: []float64{.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
	})
	m.EnvCacheHits = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "scraping_env_cache_hits_total",
		Help: "Script runs that found their dependency environment ready.",
	})
	reg.MustRegister(m.EnvBuilds, m.EnvBuildDuration, m.EnvCacheHits)
	reg.MustRegister(m.Requests, m.Duration, m.ScriptRuntime, m.Rejected, m.SlotsBusy, m.Slots, m.ReplyFailures,
		m.BrokerConnected, m.Reconnects)
	// Known label values exist from the start at 0, so rate() sees the first event of each kind and alert
	// ratios have a denominator before anything happened.
	for _, r := range []string{"invalid", "expired", "requeued"} {
		m.Rejected.WithLabelValues(r)
	}
	for _, o := range []string{"ok", "failed"} {
		m.EnvBuilds.WithLabelValues(o)
	}
	return m
}

// WatchRunner exposes the warm runner pool's counters, read from stats at scrape time.
func (m *Metrics) WatchRunner(reg prometheus.Registerer, stats func() runner.WarmStats) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "scraping_warm_runners_started_total",
			Help: "Warm runner processes started (each imports its script once).",
		}, func() float64 { return float64(stats().Started) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "scraping_warm_runner_reuses_total",
			Help: "Requests served by an already-running warm runner.",
		}, func() float64 { return float64(stats().Reused) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "scraping_warm_runners_recycled_total",
			Help: "Warm runners stopped: after a failure or timeout, N requests, idleness, or a new script version.",
		}, func() float64 { return float64(stats().Recycled) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "scraping_warm_runners_idle",
			Help: "Warm runners waiting for a request.",
		}, func() float64 { return float64(stats().Idle) }),
	)
}
