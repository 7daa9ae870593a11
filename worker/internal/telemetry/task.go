package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scrapeplatform/platform/worker/internal/task"
)

// Tasks records the task handler's work (task.Metrics).
type Tasks struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	scriptRuntime *prometheus.HistogramVec
	rejected      *prometheus.CounterVec
	slotsBusy     prometheus.Gauge
	slots         prometheus.Gauge
}

var _ task.Metrics = (*Tasks)(nil)

// NewTasks registers the task handler's metrics with reg.
func NewTasks(reg prometheus.Registerer) *Tasks {
	m := &Tasks{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scraping_requests_total",
			Help: "Scrape requests handled by this worker, by script and outcome (completed, failed, timeout).",
		}, []string{"script_name", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scraping_request_duration_seconds",
			Help:    "Time from receiving a task to publishing its reply, by script.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 25, 60, 120, 300},
		}, []string{"script_name"}),
		scriptRuntime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scraping_script_runtime_seconds",
			Help:    "Wall-clock run time of the script's child process, by script.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 25, 60, 120, 300},
		}, []string{"script_name"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scraping_tasks_rejected_total",
			Help: "Tasks not run, by reason: invalid (dead-lettered), expired (deadline passed, dead-lettered), requeued (shutdown).",
		}, []string{"reason"}),
		slotsBusy: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scraping_worker_slots_busy",
			Help: "Script slots currently running a task.",
		}),
		slots: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scraping_worker_slots",
			Help: "Script slots of this worker (WORKER_CONCURRENCY).",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.scriptRuntime, m.rejected, m.slotsBusy, m.slots)
	// Known reasons exist from the start at 0, so rate() sees the first event of each kind and alert ratios
	// have a denominator before anything happened.
	for _, r := range task.RejectReasons {
		m.rejected.WithLabelValues(r)
	}
	return m
}

// TaskDone implements task.Metrics.
func (m *Tasks) TaskDone(script, status string, d time.Duration) {
	m.requests.WithLabelValues(script, status).Inc()
	m.duration.WithLabelValues(script).Observe(d.Seconds())
}

// ScriptRan implements task.Metrics.
func (m *Tasks) ScriptRan(script string, d time.Duration) {
	m.scriptRuntime.WithLabelValues(script).Observe(d.Seconds())
}

// TaskRejected implements task.Metrics.
func (m *Tasks) TaskRejected(reason string) { m.rejected.WithLabelValues(reason).Inc() }

// Slots implements task.Metrics.
func (m *Tasks) Slots(n int) { m.slots.Set(float64(n)) }

// SlotTaken implements task.Metrics.
func (m *Tasks) SlotTaken() { m.slotsBusy.Inc() }

// SlotFreed implements task.Metrics.
func (m *Tasks) SlotFreed() { m.slotsBusy.Dec() }
