package telemetry

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// families gathers reg as name → "type, help, number of series".
func families(t *testing.T, reg *prometheus.Registry) map[string]string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, mf := range mfs {
		out[mf.GetName()] = fmt.Sprintf("%v, %q, %d series", mf.GetType(), mf.GetHelp(), len(mf.GetMetric()))
	}
	return out
}

// Every metric keeps the name, type and help text it had before it moved here (from worker/metrics.go,
// repository/metrics.go and egress/metrics.go), and the series that exist from the start.
func TestSameMetricsAsBefore(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	New(reg)
	want := map[string]string{
		"scraping_warm_runners_started_total":  `COUNTER, "Warm runner processes started (afresh, importing their script, or forked from its template).", 1 series`,
		"scraping_warm_runner_reuses_total":    `COUNTER, "Requests served by an already-running warm runner.", 1 series`,
		"scraping_warm_runners_recycled_total": `COUNTER, "Warm runners stopped: after a failure or timeout, N requests, idleness, or a new script version.", 1 series`,
		"scraping_warm_runners_idle":           `GAUGE, "Warm runners waiting for a request.", 1 series`,
		"scraping_env_builds_total":            `COUNTER, "Dependency environments built for scripts' requirements.txt, by outcome (ok, failed).", 2 series`,
		"scraping_env_build_duration_seconds":  `HISTOGRAM, "Time to build one dependency environment (venv + pip install).", 1 series`,
		"scraping_env_cache_hits_total":        `COUNTER, "Script runs that found their dependency environment ready.", 1 series`,
		"scraping_script_fetches_total":        `COUNTER, "Checks of the remote script repository, by result: downloaded, not_modified, not_found, failed.", 4 series`,
		"scraping_script_cache_stale_total":    `COUNTER, "Times a cached script copy was served because the remote repository could not be used.", 1 series`,
		"scraping_script_cache_damaged_total":  `COUNTER, "Cached script copies found damaged (changed on disk) and downloaded again.", 1 series`,
		"scraping_egress_requests_total":       `COUNTER, "Requests of scripts through the egress proxy: decision allowed (per upstream connection) or refused (reason private, resolve, bad_request).", 2 series`,
		// From the task handler's former worker/metrics.go; the vectors without series yet are checked below.
		"scraping_tasks_rejected_total":         `COUNTER, "Tasks not run, by reason: invalid (dead-lettered), expired (deadline passed, dead-lettered), requeued (shutdown, job store unavailable), parked (every slot busy with leased jobs: back after a lease period).", 4 series`,
		"scraping_worker_slots_busy":            `GAUGE, "Script slots currently running a task.", 1 series`,
		"scraping_worker_slots":                 `GAUGE, "Script slots of this worker (WORKER_CONCURRENCY).", 1 series`,
		"scraping_reply_publish_failures_total": `COUNTER, "Replies that could not be published before the caller's deadline (retried until then; then dropped and the task acked).", 1 series`,
		// Jobs (issue 10).
		"scraping_jobs_finished_total":  `COUNTER, "Jobs whose final state this worker recorded, by status (completed, failed, timeout, cancelled).", 4 series`,
		"scraping_job_duration_seconds": `HISTOGRAM, "Time from the gateway's acceptance of a job to its final state, as recorded by this worker.", 1 series`,
		"scraping_results_total":        `COUNTER, "Completed jobs' results, by storage: inline (in the reply and the job document) or claim_check (an object in the job store).", 2 series`,
		"scraping_result_bytes_total":   `COUNTER, "Bytes of completed jobs' results (JSON), by storage (inline, claim_check).", 2 series`,
		// Admission by load (issue 12).
		"scraping_worker_capacity":                    `GAUGE, "Scrapes this worker takes at once now: the admission controller's capacity, applied as the consumer's prefetch (between WORKER_MIN_CONCURRENCY and WORKER_CONCURRENCY).", 1 series`,
		"scraping_worker_admission_state":             `GAUGE, "The admission controller's last decision: 1 for the current state (growing, holding, backing_off), 0 for the others.", 3 series`,
		"scraping_warm_runner_start_duration_seconds": `HISTOGRAM, "Time to start one warm runner: from spawning it (containment included) or asking its script's template to fork it, to its ready frame.", 1 series`,
		// The memory budget (issue 12).
		"scraping_worker_memory_budget_bytes":      `GAUGE, "The memory budget of blocking (def scrape) runners: WORKER_MEMORY_BUDGET_MB in bytes (0: no bound).", 1 series`,
		"scraping_worker_memory_budget_held_bytes": `GAUGE, "Bytes of the memory budget held by blocking runners (idle ones included) and their scripts' templates.", 1 series`,
		"scraping_worker_memory_budget_waiting":    `GAUGE, "Blocking runs waiting for memory of the budget (for a new runner).", 1 series`,
	}
	got := families(t, reg)
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s:\n got %s\nwant %s", name, got[name], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d metric families, want %d: %v", len(got), len(want), got)
	}
}

func TestMetricsRecord(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.WarmStarted(300 * time.Millisecond)
	m.WarmReused()
	m.WarmRecycled()
	m.WarmIdle(3)
	m.MemoryBudget(400<<20, 96<<20, 2)
	m.EnvBuilt("ok", 2*time.Second)
	m.EnvHit()
	m.ScriptFetched("downloaded")
	m.StaleServed()
	m.DamagedCopy()
	m.EgressDecision(true, "")
	m.EgressDecision(false, "resolve")
	want := `
# HELP scraping_egress_requests_total Requests of scripts through the egress proxy: decision allowed (per upstream connection) or refused (reason private, resolve, bad_request).
# TYPE scraping_egress_requests_total counter
scraping_egress_requests_total{decision="allowed",reason=""} 1
scraping_egress_requests_total{decision="refused",reason="private"} 0
scraping_egress_requests_total{decision="refused",reason="resolve"} 1
# HELP scraping_script_cache_damaged_total Cached script copies found damaged (changed on disk) and downloaded again.
# TYPE scraping_script_cache_damaged_total counter
scraping_script_cache_damaged_total 1
# HELP scraping_script_cache_stale_total Times a cached script copy was served because the remote repository could not be used.
# TYPE scraping_script_cache_stale_total counter
scraping_script_cache_stale_total 1
# HELP scraping_script_fetches_total Checks of the remote script repository, by result: downloaded, not_modified, not_found, failed.
# TYPE scraping_script_fetches_total counter
scraping_script_fetches_total{result="downloaded"} 1
scraping_script_fetches_total{result="failed"} 0
scraping_script_fetches_total{result="not_found"} 0
scraping_script_fetches_total{result="not_modified"} 0
# HELP scraping_warm_runners_idle Warm runners waiting for a request.
# TYPE scraping_warm_runners_idle gauge
scraping_warm_runners_idle 3
# HELP scraping_worker_memory_budget_bytes The memory budget of blocking (def scrape) runners: WORKER_MEMORY_BUDGET_MB in bytes (0: no bound).
# TYPE scraping_worker_memory_budget_bytes gauge
scraping_worker_memory_budget_bytes 4.194304e+08
# HELP scraping_worker_memory_budget_held_bytes Bytes of the memory budget held by blocking runners (idle ones included) and their scripts' templates.
# TYPE scraping_worker_memory_budget_held_bytes gauge
scraping_worker_memory_budget_held_bytes 1.00663296e+08
# HELP scraping_worker_memory_budget_waiting Blocking runs waiting for memory of the budget (for a new runner).
# TYPE scraping_worker_memory_budget_waiting gauge
scraping_worker_memory_budget_waiting 2
# HELP scraping_env_cache_hits_total Script runs that found their dependency environment ready.
# TYPE scraping_env_cache_hits_total counter
scraping_env_cache_hits_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "scraping_egress_requests_total", "scraping_script_cache_damaged_total",
		"scraping_script_cache_stale_total", "scraping_script_fetches_total", "scraping_warm_runners_idle",
		"scraping_worker_memory_budget_bytes", "scraping_worker_memory_budget_held_bytes", "scraping_worker_memory_budget_waiting", "scraping_env_cache_hits_total"); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.Envs.builds.WithLabelValues("ok")); got != 1 {
		t.Fatalf("env builds ok = %v", got)
	}
	if got := testutil.ToFloat64(m.Warm.started); got != 1 {
		t.Fatalf("warm runners started = %v", got)
	}
	// The start's duration lands in its bucket: above 0.25 s, within 0.5 s.
	starts := `
# HELP scraping_warm_runner_start_duration_seconds Time to start one warm runner: from spawning it (containment included) or asking its script's template to fork it, to its ready frame.
# TYPE scraping_warm_runner_start_duration_seconds histogram
scraping_warm_runner_start_duration_seconds_bucket{le="0.002"} 0
scraping_warm_runner_start_duration_seconds_bucket{le="0.005"} 0
scraping_warm_runner_start_duration_seconds_bucket{le="0.01"} 0
scraping_warm_runner_start_duration_seconds_bucket{le="0.025"} 0
scraping_warm_runner_start_duration_seconds_bucket{le="0.05"} 0
scraping_warm_runner_start_duration_seconds_bucket{le="0.1"} 0
scraping_warm_runner_start_duration_seconds_bucket{le="0.25"} 0
scraping_warm_runner_start_duration_seconds_bucket{le="0.5"} 1
scraping_warm_runner_start_duration_seconds_bucket{le="1"} 1
scraping_warm_runner_start_duration_seconds_bucket{le="2.5"} 1
scraping_warm_runner_start_duration_seconds_bucket{le="5"} 1
scraping_warm_runner_start_duration_seconds_bucket{le="10"} 1
scraping_warm_runner_start_duration_seconds_bucket{le="30"} 1
scraping_warm_runner_start_duration_seconds_bucket{le="+Inf"} 1
scraping_warm_runner_start_duration_seconds_sum 0.3
scraping_warm_runner_start_duration_seconds_count 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(starts), "scraping_warm_runner_start_duration_seconds"); err != nil {
		t.Fatal(err)
	}
}

// The task handler's and the broker's metrics keep the names, types, labels and help texts they had in
// worker/metrics.go.
func TestTaskAndBrokerMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.Slots(4)
	m.SlotTaken()
	m.SlotTaken()
	m.SlotFreed()
	m.TaskDone("quotes", "team-a", "completed", 2*time.Second)
	m.ScriptRan("quotes", time.Second)
	m.TaskRejected("expired")
	up, down := m.Connection("consume")
	up()
	up()
	down(nil)
	pubUp, _ := m.Connection("publish")
	pubUp()
	m.ReplyFailed(nil)
	want := `
# HELP scraping_requests_total Scrape requests handled by this worker, by script, client (the job's owner or the token's subject; past METRICS_MAX_CLIENTS distinct ones: other) and outcome (completed, failed, timeout, cancelled).
# TYPE scraping_requests_total counter
scraping_requests_total{client_id="team-a",script_name="quotes",status="completed"} 1
# HELP scraping_tasks_rejected_total Tasks not run, by reason: invalid (dead-lettered), expired (deadline passed, dead-lettered), requeued (shutdown, job store unavailable), parked (every slot busy with leased jobs: back after a lease period).
# TYPE scraping_tasks_rejected_total counter
scraping_tasks_rejected_total{reason="expired"} 1
scraping_tasks_rejected_total{reason="invalid"} 0
scraping_tasks_rejected_total{reason="parked"} 0
scraping_tasks_rejected_total{reason="requeued"} 0
# HELP scraping_worker_slots Script slots of this worker (WORKER_CONCURRENCY).
# TYPE scraping_worker_slots gauge
scraping_worker_slots 4
# HELP scraping_worker_slots_busy Script slots currently running a task.
# TYPE scraping_worker_slots_busy gauge
scraping_worker_slots_busy 1
# HELP scraping_broker_connected 1 while the named AMQP connection (consume, publish) is up.
# TYPE scraping_broker_connected gauge
scraping_broker_connected{connection="consume"} 0
scraping_broker_connected{connection="publish"} 1
# HELP scraping_broker_connects_total AMQP connections established, by connection; more than one means reconnects.
# TYPE scraping_broker_connects_total counter
scraping_broker_connects_total{connection="consume"} 2
scraping_broker_connects_total{connection="publish"} 1
# HELP scraping_reply_publish_failures_total Replies that could not be published before the caller's deadline (retried until then; then dropped and the task acked).
# TYPE scraping_reply_publish_failures_total counter
scraping_reply_publish_failures_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "scraping_requests_total", "scraping_tasks_rejected_total",
		"scraping_worker_slots", "scraping_worker_slots_busy", "scraping_broker_connected", "scraping_broker_connects_total",
		"scraping_reply_publish_failures_total"); err != nil {
		t.Fatal(err)
	}
	got := families(t, reg)
	for name, w := range map[string]string{
		"scraping_request_duration_seconds": `HISTOGRAM, "Time from receiving a task to publishing its reply, by script.", 1 series`,
		"scraping_script_runtime_seconds":   `HISTOGRAM, "Wall-clock run time of the script's child process, by script.", 1 series`,
	} {
		if got[name] != w {
			t.Errorf("%s:\n got %s\nwant %s", name, got[name], w)
		}
	}
}

func TestJobMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.JobFinished("completed", 3*time.Second)
	m.JobFinished("cancelled", time.Second)
	m.ResultStored("claim_check", 3<<20)
	m.ResultStored("inline", 100)
	m.ResultStored("inline", 20)
	want := `
# HELP scraping_jobs_finished_total Jobs whose final state this worker recorded, by status (completed, failed, timeout, cancelled).
# TYPE scraping_jobs_finished_total counter
scraping_jobs_finished_total{status="cancelled"} 1
scraping_jobs_finished_total{status="completed"} 1
scraping_jobs_finished_total{status="failed"} 0
scraping_jobs_finished_total{status="timeout"} 0
# HELP scraping_result_bytes_total Bytes of completed jobs' results (JSON), by storage (inline, claim_check).
# TYPE scraping_result_bytes_total counter
scraping_result_bytes_total{storage="claim_check"} 3.145728e+06
scraping_result_bytes_total{storage="inline"} 120
# HELP scraping_results_total Completed jobs' results, by storage: inline (in the reply and the job document) or claim_check (an object in the job store).
# TYPE scraping_results_total counter
scraping_results_total{storage="claim_check"} 1
scraping_results_total{storage="inline"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "scraping_jobs_finished_total", "scraping_result_bytes_total", "scraping_results_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(m.Jobs.duration); n != 1 {
		t.Fatalf("job duration series: %d", n)
	}
}

func TestAdmissionStateIsOneHot(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.Admission.Set(48, "backing_off")
	want := `# HELP scraping_worker_admission_state The admission controller's last decision: 1 for the current state (growing, holding, backing_off), 0 for the others.
# TYPE scraping_worker_admission_state gauge
scraping_worker_admission_state{state="backing_off"} 1
scraping_worker_admission_state{state="growing"} 0
scraping_worker_admission_state{state="holding"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "scraping_worker_admission_state"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(m.Admission.capacity); got != 48 {
		t.Errorf("capacity %v, want 48", got)
	}
}
