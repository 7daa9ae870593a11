package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scrapeplatform/platform/shared/job"
	"github.com/scrapeplatform/platform/worker/internal/task"
)

// Jobs records the jobs whose final state this worker recorded (task.JobMetrics).
type Jobs struct {
	finished    *prometheus.CounterVec
	duration    prometheus.Histogram
	results     *prometheus.CounterVec
	resultBytes *prometheus.CounterVec
}

var _ task.JobMetrics = (*Jobs)(nil)

// jobBuckets are the buckets of the job duration histogram, in seconds: 100 ms to 1 h (the longest timeout)
// plus the queue wait.
var jobBuckets = []float64{.1, .25, .5, 1, 2.5, 5, 10, 25, 60, 120, 300, 600, 900, 1800, 3600, 5400}

// jobStatuses are the final statuses a worker records.
var jobStatuses = []string{string(job.StatusCompleted), string(job.StatusFailed), string(job.StatusTimeout), string(job.StatusCancelled)}

// NewJobs registers the job metrics with reg.
func NewJobs(reg prometheus.Registerer) *Jobs {
	r := registrar{reg}
	storages := []string{task.StorageInline, task.StorageClaimCheck}
	return &Jobs{
		finished:    withKnown(r.counterVec("scraping_jobs_finished_total", "Jobs whose final state this worker recorded, by status (completed, failed, timeout, cancelled).", "status"), jobStatuses),
		duration:    r.histogram("scraping_job_duration_seconds", "Time from the gateway's acceptance of a job to its final state, as recorded by this worker.", jobBuckets),
		results:     withKnown(r.counterVec("scraping_results_total", "Completed jobs' results, by storage: inline (in the reply and the job document) or claim_check (an object in the job store).", "storage"), storages),
		resultBytes: withKnown(r.counterVec("scraping_result_bytes_total", "Bytes of completed jobs' results (JSON), by storage (inline, claim_check).", "storage"), storages),
	}
}

// JobFinished implements task.JobMetrics.
func (m *Jobs) JobFinished(status string, d time.Duration) {
	m.finished.WithLabelValues(status).Inc()
	m.duration.Observe(d.Seconds())
}

// ResultStored implements task.JobMetrics.
func (m *Jobs) ResultStored(storage string, bytes int64) {
	m.results.WithLabelValues(storage).Inc()
	m.resultBytes.WithLabelValues(storage).Add(float64(bytes))
}
