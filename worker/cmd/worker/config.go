package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/scrapeplatform/platform/shared/config"
	"github.com/scrapeplatform/platform/worker/internal/egress"
	"github.com/scrapeplatform/platform/worker/internal/envcache"
	"github.com/scrapeplatform/platform/worker/internal/manifest"
	"github.com/scrapeplatform/platform/worker/internal/repository"
	"github.com/scrapeplatform/platform/worker/internal/runner"
	"github.com/scrapeplatform/platform/worker/internal/task"
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
			Concurrency: e.Int("WORKER_CONCURRENCY", runtime.NumCPU(), 1, 256),
		},
	}
	c.WorkDir = e.String("WORKER_WORK_DIR", filepath.Join(os.TempDir(), "scrape-worker-"+c.Task.ID))
	c.Manifest = manifest.LoadDefaults(e)
	c.Task.Defaults = c.Manifest
	c.Runner = runner.LoadConfig(e, c.WorkDir, c.Task.Concurrency)
	c.Envs = envcache.LoadConfig(e, c.WorkDir)
	c.Repository = repository.LoadOptions(e, c.WorkDir, c.Task.ID)
	c.Egress = egress.LoadConfig(e)
	return c, e.Err()
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
