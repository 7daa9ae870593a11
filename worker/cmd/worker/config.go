package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/scrapeplatform/platform/shared/config"
	"github.com/scrapeplatform/platform/shared/job"
	"github.com/scrapeplatform/platform/shared/webhook"
	"github.com/scrapeplatform/platform/worker/internal/admission"
	"github.com/scrapeplatform/platform/worker/internal/egress"
	"github.com/scrapeplatform/platform/worker/internal/envcache"
	"github.com/scrapeplatform/platform/worker/internal/manifest"
	"github.com/scrapeplatform/platform/worker/internal/repository"
	"github.com/scrapeplatform/platform/worker/internal/runner"
	"github.com/scrapeplatform/platform/worker/internal/task"
	"github.com/scrapeplatform/platform/worker/internal/telemetry"
)

// workerConfig is the worker's whole configuration: the worker's own settings and each package's part, read from
// the environment once by loadConfig. worker/README.md's configuration table documents every variable.
type workerConfig struct {
	// RabbitMQURL and TaskQueue locate the broker and the task queue (RABBITMQ_URL, RABBITMQ_TASK_QUEUE).
	RabbitMQURL string
	TaskQueue   string
	// MetricsAddr is where /metrics and /healthz are served (WORKER_METRICS_ADDR).
	MetricsAddr string
	// DrainTimeout is how long running scripts may finish after SIGTERM (WORKER_DRAIN_TIMEOUT).
	DrainTimeout time.Duration
	// LogLevel is debug, info, warn or error (LOG_LEVEL).
	LogLevel string
	// WorkDir is the parent of the run folders, the environments and the script cache (WORKER_WORK_DIR).
	WorkDir string

	// Task is the task handler's part: WORKER_ID, WORKER_CONCURRENCY and the manifest defaults.
	Task task.Config
	// Manifest holds the defaults for what a script's manifest leaves out (SCRIPT_ISOLATION).
	Manifest manifest.Defaults
	// Runner, Envs, Repository and Egress are the script execution packages' parts.
	Runner     runner.Config
	Envs       envcache.Config
	Repository repository.Options
	Egress     egress.Config
	// Webhooks are the deliverer's settings (WEBHOOK_*, webhook.LoadConfigFrom).
	Webhooks webhook.Config

	// JobStore locates the job store (JOB_STORE_BUCKET and the rest of job.Load's variables); nil when
	// JOB_STORE_BUCKET is unset: tasks that carry a job then fail with internal_error.
	JobStore *job.Config
	// JobLease is the lease period of long jobs (JOB_LEASE); the task handler's part has the rest
	// (SCRAPE_MAX_RESULT_MB, JOB_INLINE_RESULT_KB, JOB_CANCEL_POLL, RABBITMQ_CONSUMER_TIMEOUT).
	JobLease time.Duration

	// Admission bounds how many scrapes the worker takes at once (issue 12): WORKER_CONCURRENCY is its
	// ceiling, WORKER_MIN_CONCURRENCY its floor; ADMISSION_CPU_HIGH, ADMISSION_MEMORY_HIGH and
	// ADMISSION_LAG_HIGH the load past which it backs off.
	Admission admission.Config
	// MaxClients caps scraping_requests_total's client_id values (METRICS_MAX_CLIENTS).
	MaxClients int
}

// loadConfig reads the configuration through getenv, once (one config.Env, each package's loader adding
// its part), and reports every problem at once. Loggers and metrics are run's to set. (The type is not
// called config: that name is the shared/config package's, imported here without an alias.)
func loadConfig(getenv func(string) string) (workerConfig, error) {
	e := config.NewEnv(getenv)
	c := workerConfig{
		RabbitMQURL:  e.String("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
		TaskQueue:    e.String("RABBITMQ_TASK_QUEUE", "scraping_tasks"),
		MetricsAddr:  e.String("WORKER_METRICS_ADDR", ":9100"),
		DrainTimeout: e.Duration("WORKER_DRAIN_TIMEOUT", 25*time.Second, 0, 10*time.Minute),
		LogLevel:     e.OneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		Task: task.Config{
			ID:          e.String("WORKER_ID", defaultWorkerID()),
			Concurrency: e.Int("WORKER_CONCURRENCY", admission.DefaultCeiling, 1, 4096),
		},
		MaxClients: e.Int("METRICS_MAX_CLIENTS", telemetry.DefaultMaxClients, 0, 10_000),
	}
	c.Admission = admission.Config{
		Ceiling:    c.Task.Concurrency,
		Floor:      e.Int("WORKER_MIN_CONCURRENCY", min(defaultFloor(), c.Task.Concurrency), 1, 4096),
		CPUHigh:    e.Float("ADMISSION_CPU_HIGH", admission.DefaultCPUHigh, 0.1, 1),
		MemoryHigh: e.Float("ADMISSION_MEMORY_HIGH", admission.DefaultMemoryHigh, 0.1, 1),
		LagHigh:    e.Duration("ADMISSION_LAG_HIGH", admission.DefaultLagHigh, time.Millisecond, time.Minute),
	}
	if c.Admission.Floor > c.Admission.Ceiling {
		e.Fail("WORKER_MIN_CONCURRENCY (%d) is larger than WORKER_CONCURRENCY (%d)", c.Admission.Floor, c.Admission.Ceiling)
	}
	c.WorkDir = e.String("WORKER_WORK_DIR", filepath.Join(os.TempDir(), "scrape-worker-"+c.Task.ID))
	c.Manifest = manifest.LoadDefaults(e)
	c.Task.Defaults = c.Manifest
	c.Runner = runner.LoadConfig(e, c.WorkDir, c.Task.Concurrency)
	c.Envs = envcache.LoadConfig(e, c.WorkDir)
	c.Repository = repository.LoadOptions(e, c.WorkDir, c.Task.ID)
	c.Egress = egress.LoadConfig(e)
	c.Webhooks = webhook.LoadConfigFrom(e)

	c.Task.MaxJobResultBytes = e.Int("SCRAPE_MAX_RESULT_MB", task.DefaultMaxJobResultBytes>>20, 1, 1024) << 20
	c.Task.InlineResultBytes = e.Int("JOB_INLINE_RESULT_KB", task.DefaultInlineResultBytes>>10, 1, 400) << 10
	c.Task.CancelPoll = e.Duration("JOB_CANCEL_POLL", task.DefaultCancelPoll, time.Second, 10*time.Minute)
	c.Task.ConsumerTimeout = e.Duration("RABBITMQ_CONSUMER_TIMEOUT", task.DefaultConsumerTimeout, 10*time.Minute, 24*time.Hour)
	c.Task.LeaseMargin = task.DefaultLeaseMargin
	c.JobLease = e.Duration("JOB_LEASE", 10*time.Minute, time.Minute, time.Hour)
	if c.JobLease >= c.Task.ConsumerTimeout-c.Task.LeaseMargin {
		e.Fail("JOB_LEASE: %s must be shorter than RABBITMQ_CONSUMER_TIMEOUT less its 5 min margin (%s)", c.JobLease, c.Task.ConsumerTimeout-c.Task.LeaseMargin)
	}
	var jobErr error
	if getenv("JOB_STORE_BUCKET") != "" {
		jc, err := job.Load(getenv)
		c.JobStore, jobErr = &jc, err
	}
	return c, errors.Join(e.Err(), jobErr)
}

// defaultWorkerID is WORKER_ID's default: the host name and a random suffix.
func defaultWorkerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// defaultFloor is WORKER_MIN_CONCURRENCY's default: twice the CPUs the worker may use (at least 4), so a
// loaded worker still keeps every CPU busy with CPU-bound scripts, as the old fixed default (one per CPU)
// did, and more.
func defaultFloor() int { return max(4, 2*runtime.NumCPU()) }
