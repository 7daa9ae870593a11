// Package config loads the worker's configuration from the environment.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"time"

	sharedconfig "github.com/scrapeplatform/platform/shared/config"
)

// Config is the worker's configuration. The README's table documents every field's variable.
type Config struct {
	RabbitMQURL      string
	TaskQueue        string
	WorkerID         string
	Concurrency      int
	MetricsAddr      string
	RepositoryType   string
	RepositoryURL    string
	Python           string
	WorkDir          string
	MaxResultBytes   int
	MemoryLimitBytes int64
	DrainTimeout     time.Duration
	LogLevel         string
	// ScriptSource: the s3, git and http repositories and their cache (scripts.go).
	ScriptSource
}

// Load reads the configuration through getenv and reports every problem at once.
func Load(getenv func(string) string) (Config, error) {
	e := sharedconfig.NewEnv(getenv)
	c := Config{
		RabbitMQURL:      e.String("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
		TaskQueue:        e.String("RABBITMQ_TASK_QUEUE", "scraping_tasks"),
		WorkerID:         e.String("WORKER_ID", defaultWorkerID()),
		Concurrency:      e.Int("WORKER_CONCURRENCY", runtime.NumCPU(), 1, 256),
		MetricsAddr:      e.String("WORKER_METRICS_ADDR", ":9100"),
		RepositoryType:   e.OneOf("SCRIPT_REPOSITORY_TYPE", "local", repositoryTypes...),
		RepositoryURL:    e.String("SCRIPT_REPOSITORY_URL", ""),
		Python:           e.String("WORKER_PYTHON", "python3"),
		MaxResultBytes:   e.Int("SCRIPT_MAX_RESULT_BYTES", 400*1024, 1024, 450*1024),
		MemoryLimitBytes: int64(e.Int("SCRIPT_MEMORY_LIMIT_MB", 1024, 0, 1<<20)) << 20,
		DrainTimeout:     e.Duration("WORKER_DRAIN_TIMEOUT", 25*time.Second, 0, 10*time.Minute),
		LogLevel:         e.OneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
	}
	c.WorkDir = e.String("WORKER_WORK_DIR", filepath.Join(os.TempDir(), "scrape-worker-"+c.WorkerID))
	if c.RepositoryType == "local" && c.RepositoryURL == "" {
		c.RepositoryURL = "./scripts"
	}
	loadScripts(e, &c)
	return c, e.Err()
}

func defaultWorkerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}
