// Package telemetry is the worker's Prometheus edge: it implements the metrics of the task handler (task),
// the script execution packages — runner (warm runners), envcache (dependency environments), repository
// (the script cache) and egress (the proxy) — and the broker connections. Each of those packages declares the small Metrics interface it calls and records nothing when given
// none; the types here implement those interfaces with the metrics documented in worker/README.md
// ("Metrics"). Names, types, labels and help texts are what dashboards and alerts (local/, test/) read:
// change them only together.
package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scrapeplatform/platform/worker/internal/egress"
	"github.com/scrapeplatform/platform/worker/internal/envcache"
	"github.com/scrapeplatform/platform/worker/internal/repository"
	"github.com/scrapeplatform/platform/worker/internal/runner"
	"github.com/scrapeplatform/platform/worker/internal/task"
)

// Metrics records for every package of the worker: pass it as task.Config.Metrics, runner.Config.Metrics,
// envcache.Config.Metrics, repository.CacheOptions.Metrics and egress.Config.Metrics, and its Broker's
// methods as the broker callbacks.
type Metrics struct {
	*Tasks
	*Warm
	*Envs
	*Scripts
	*Egress
	*Broker
	*Jobs
	*Admission
}

var (
	_ task.Metrics       = (*Metrics)(nil)
	_ runner.Metrics     = (*Metrics)(nil)
	_ envcache.Metrics   = (*Metrics)(nil)
	_ repository.Metrics = (*Metrics)(nil)
	_ egress.Metrics     = (*Metrics)(nil)
	_ task.JobMetrics    = (*Metrics)(nil)
)

// New creates every metric of the worker and registers them with reg, once.
func New(reg prometheus.Registerer) *Metrics {
	return &Metrics{Tasks: NewTasks(reg), Warm: NewWarm(reg), Envs: NewEnvs(reg), Scripts: NewScripts(reg),
		Egress: NewEgress(reg), Broker: NewBroker(reg), Jobs: NewJobs(reg), Admission: NewAdmission(reg)}
}

// Warm records the warm runner pool (runner.Metrics).
type Warm struct {
	started, reused, recycled prometheus.Counter
	idle                      prometheus.Gauge
	startDuration             prometheus.Histogram
	budget, budgetHeld        prometheus.Gauge
	budgetWaiting             prometheus.Gauge
}

// NewWarm registers the warm runner pool's metrics with reg.
func NewWarm(reg prometheus.Registerer) *Warm {
	r := registrar{reg}
	return &Warm{
		started:  r.counter("scraping_warm_runners_started_total", "Warm runner processes started (afresh, importing their script, or forked from its template)."),
		reused:   r.counter("scraping_warm_runner_reuses_total", "Requests served by an already-running warm runner."),
		recycled: r.counter("scraping_warm_runners_recycled_total", "Warm runners stopped: after a failure or timeout, N requests, idleness, or a new script version."),
		idle:     r.gauge("scraping_warm_runners_idle", "Warm runners waiting for a request."),
		startDuration: r.histogram("scraping_warm_runner_start_duration_seconds",
			"Time to start one warm runner: from spawning it (containment included) or asking its script's template to fork it, to its ready frame.",
			[]float64{.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}),
		budget: r.gauge("scraping_worker_memory_budget_bytes",
			"The memory budget of blocking (def scrape) runners: WORKER_MEMORY_BUDGET_MB in bytes (0: no bound)."),
		budgetHeld: r.gauge("scraping_worker_memory_budget_held_bytes",
			"Bytes of the memory budget held by blocking runners (idle ones included) and their scripts' templates."),
		budgetWaiting: r.gauge("scraping_worker_memory_budget_waiting",
			"Blocking runs waiting for memory of the budget (for a new runner)."),
	}
}

// WarmStarted implements runner.Metrics.
func (m *Warm) WarmStarted(took time.Duration) {
	m.started.Inc()
	m.startDuration.Observe(took.Seconds())
}

// WarmReused implements runner.Metrics.
func (m *Warm) WarmReused() { m.reused.Inc() }

// WarmRecycled implements runner.Metrics.
func (m *Warm) WarmRecycled() { m.recycled.Inc() }

// WarmIdle implements runner.Metrics.
func (m *Warm) WarmIdle(n int) { m.idle.Set(float64(n)) }

// MemoryBudget implements runner.Metrics.
func (m *Warm) MemoryBudget(total, held int64, waiting int) {
	m.budget.Set(float64(total))
	m.budgetHeld.Set(float64(held))
	m.budgetWaiting.Set(float64(waiting))
}

// Envs records the dependency environment cache (envcache.Metrics).
type Envs struct {
	builds   *prometheus.CounterVec
	duration prometheus.Histogram
	hits     prometheus.Counter
}

// NewEnvs registers the environment cache's metrics with reg.
func NewEnvs(reg prometheus.Registerer) *Envs {
	r := registrar{reg}
	return &Envs{
		builds:   withKnown(r.counterVec("scraping_env_builds_total", "Dependency environments built for scripts' requirements.txt, by outcome (ok, failed).", "outcome"), []string{"ok", "failed"}),
		duration: r.histogram("scraping_env_build_duration_seconds", "Time to build one dependency environment (venv + pip install).", []float64{.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}),
		hits:     r.counter("scraping_env_cache_hits_total", "Script runs that found their dependency environment ready."),
	}
}

// EnvBuilt implements envcache.Metrics.
func (m *Envs) EnvBuilt(outcome string, d time.Duration) {
	m.builds.WithLabelValues(outcome).Inc()
	m.duration.Observe(d.Seconds())
}

// EnvHit implements envcache.Metrics.
func (m *Envs) EnvHit() { m.hits.Inc() }

// Scripts records the script cache of the s3, git and http repositories (repository.Metrics).
type Scripts struct {
	fetches *prometheus.CounterVec
	stales  prometheus.Counter
	damaged prometheus.Counter
}

// NewScripts registers the script cache's metrics with reg.
func NewScripts(reg prometheus.Registerer) *Scripts {
	r := registrar{reg}
	return &Scripts{
		fetches: withKnown(r.counterVec("scraping_script_fetches_total", "Checks of the remote script repository, by result: downloaded, not_modified, not_found, failed.", "result"), repository.FetchResults),
		stales:  r.counter("scraping_script_cache_stale_total", "Times a cached script copy was served because the remote repository could not be used."),
		damaged: r.counter("scraping_script_cache_damaged_total", "Cached script copies found damaged (changed on disk) and downloaded again."),
	}
}

// ScriptFetched implements repository.Metrics.
func (m *Scripts) ScriptFetched(result string) { m.fetches.WithLabelValues(result).Inc() }

// StaleServed implements repository.Metrics.
func (m *Scripts) StaleServed() { m.stales.Inc() }

// DamagedCopy implements repository.Metrics.
func (m *Scripts) DamagedCopy() { m.damaged.Inc() }

// Egress records the egress proxy's decisions (egress.Metrics).
type Egress struct {
	requests *prometheus.CounterVec
}

// NewEgress registers scraping_egress_requests_total{decision, reason} with reg.
func NewEgress(reg prometheus.Registerer) *Egress {
	r := registrar{reg}
	c := r.counterVec("scraping_egress_requests_total", "Requests of scripts through the egress proxy: decision allowed (per upstream connection) or refused (reason private, resolve, bad_request).", "decision", "reason")
	c.WithLabelValues("allowed", "").Add(0)
	c.WithLabelValues("refused", "private").Add(0)
	return &Egress{requests: c}
}

// EgressDecision implements egress.Metrics.
func (m *Egress) EgressDecision(allowed bool, reason string) {
	if allowed {
		m.requests.WithLabelValues("allowed", "").Inc()
		return
	}
	m.requests.WithLabelValues("refused", reason).Inc()
}
