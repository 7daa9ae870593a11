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
	clients       *ClientLabels
}

var _ task.Metrics = (*Tasks)(nil)

// NewTasks registers the task handler's metrics with reg.
func NewTasks(reg prometheus.Registerer) *Tasks {
	r := registrar{reg}
	return &Tasks{
		requests:      r.counterVec("scraping_requests_total", "Scrape requests handled by this worker, by script, client (the job's owner or the token's subject; past METRICS_MAX_CLIENTS distinct ones: other) and outcome (completed, failed, timeout, cancelled).", "script_name", "client_id", "status"),
		duration:      r.histogramVec("scraping_request_duration_seconds", "Time from receiving a task to publishing its reply, by script.", latencyBuckets, "script_name"),
		scriptRuntime: r.histogramVec("scraping_script_runtime_seconds", "Wall-clock run time of the script's child process, by script.", latencyBuckets, "script_name"),
		rejected:      withKnown(r.counterVec("scraping_tasks_rejected_total", "Tasks not run, by reason: invalid (dead-lettered), expired (deadline passed, dead-lettered), requeued (shutdown, job store unavailable), parked (every slot busy with leased jobs: back after a lease period).", "reason"), task.RejectReasons),
		slotsBusy:     r.gauge("scraping_worker_slots_busy", "Script slots currently running a task."),
		slots:         r.gauge("scraping_worker_slots", "Script slots of this worker (WORKER_CONCURRENCY)."),
		clients:       NewClientLabels(DefaultMaxClients),
	}
}

// LimitClients sets how many distinct client_id values scraping_requests_total keeps (METRICS_MAX_CLIENTS)
// before it counts the rest as OtherClient. Call it before the first task.
func (m *Tasks) LimitClients(max int) { m.clients = NewClientLabels(max) }

// TaskDone implements task.Metrics.
func (m *Tasks) TaskDone(script, client, status string, d time.Duration) {
	m.requests.WithLabelValues(script, m.clients.Label(client), status).Inc()
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
