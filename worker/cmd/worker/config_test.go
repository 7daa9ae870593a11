package main

import (
	"strings"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/worker/internal/manifest"
	"github.com/scrapeplatform/platform/worker/internal/repository"
)

func env(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

// The worker's own defaults, and each package's part present in the tree (the packages' own tests check
// the rest of their variables).
func TestLoadConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.TaskQueue != "scraping_tasks" || c.RabbitMQURL != "amqp://guest:guest@127.0.0.1:5672/" || c.MetricsAddr != ":9100" ||
		c.DrainTimeout != 25*time.Second || c.LogLevel != "info" || c.Task.ID == "" || c.Task.Concurrency < 1 {
		t.Fatalf("worker defaults: %+v", c)
	}
	if c.Repository.Type != repository.TypeLocal || c.Repository.URL != "./scripts" || c.Runner.MemoryLimitBytes != 1<<30 ||
		c.Manifest.Isolation != manifest.Warm || c.Task.Defaults != c.Manifest || !c.Egress.Enabled {
		t.Fatalf("package defaults: %+v", c)
	}
	if !strings.HasSuffix(c.WorkDir, "scrape-worker-"+c.Task.ID) || c.Runner.WorkDir != c.WorkDir ||
		c.Envs.Root != c.WorkDir+"/envs" || c.Repository.Cache.Dir != c.WorkDir+"/scripts/"+c.Task.ID {
		t.Fatalf("work folders: %+v", c)
	}
	if c.Runner.Warm.MaxIdle != 2*c.Task.Concurrency {
		t.Fatalf("WARM_RUNNER_MAX_IDLE default: %d for %d slots", c.Runner.Warm.MaxIdle, c.Task.Concurrency)
	}
}

func TestLoadConfigWorkerSettings(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(env(map[string]string{"WORKER_ID": "w1", "WORKER_WORK_DIR": "/w", "WORKER_CONCURRENCY": "3",
		"SCRIPT_ISOLATION": "process", "RABBITMQ_TASK_QUEUE": "q", "WORKER_DRAIN_TIMEOUT": "5"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Task.ID != "w1" || c.Task.Concurrency != 3 || c.Runner.Warm.MaxIdle != 6 || c.Task.Defaults.Isolation != manifest.Process ||
		c.TaskQueue != "q" || c.DrainTimeout != 5*time.Second || c.Envs.Root != "/w/envs" || c.Repository.Cache.Dir != "/w/scripts/w1" {
		t.Fatalf("settings: %+v", c)
	}
}

// One problem per package, and the worker's own: every one is reported at once.
func TestLoadConfigReportsEveryProblem(t *testing.T) {
	t.Parallel()
	vars := map[string]string{
		"WORKER_CONCURRENCY": "0", "WORKER_DRAIN_TIMEOUT": "forever", "LOG_LEVEL": "loud", // the worker
		"SCRIPT_REPOSITORY_TYPE": "ftp",    // repository
		"SCRIPT_RUN_AS":          "nobody", // runner
		"ENV_BUILD_TIMEOUT":      "1s",     // envcache
		"SCRIPT_ISOLATION":       "vm",     // manifest
		"EGRESS_PROXY":           "maybe",  // egress
	}
	_, err := loadConfig(env(vars))
	if err == nil {
		t.Fatal("want an error")
	}
	for k := range vars {
		if !strings.Contains(err.Error(), k) {
			t.Errorf("error does not name %s: %v", k, err)
		}
	}
}

// The job settings: defaults, values, the job store only with JOB_STORE_BUCKET, and their problems.
func TestLoadConfigJobs(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.JobStore != nil || c.Task.MaxJobResultBytes != 100<<20 || c.Task.InlineResultBytes != 256<<10 ||
		c.Task.CancelPoll != 10*time.Second || c.Task.ConsumerTimeout != 30*time.Minute || c.Task.LeaseMargin != 5*time.Minute ||
		c.JobLease != 10*time.Minute {
		t.Fatalf("job defaults: store %v, %+v, lease %s", c.JobStore, c.Task, c.JobLease)
	}
	c, err = loadConfig(env(map[string]string{"JOB_STORE_BUCKET": "results", "JOB_STORE_PREFIX": "dev", "SCRAPE_MAX_RESULT_MB": "20",
		"JOB_INLINE_RESULT_KB": "64", "JOB_CANCEL_POLL": "2s", "RABBITMQ_CONSUMER_TIMEOUT": "1h", "JOB_LEASE": "20m"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.JobStore == nil || c.JobStore.Bucket != "results" || c.JobStore.Prefix != "dev/" || c.Task.MaxJobResultBytes != 20<<20 ||
		c.Task.InlineResultBytes != 64<<10 || c.Task.CancelPoll != 2*time.Second || c.Task.ConsumerTimeout != time.Hour || c.JobLease != 20*time.Minute {
		t.Fatalf("job settings: store %+v, %+v, lease %s", c.JobStore, c.Task, c.JobLease)
	}
	vars := map[string]string{"JOB_STORE_BUCKET": "b", "JOB_RETENTION": "1m", "SCRAPE_MAX_RESULT_MB": "0", "JOB_INLINE_RESULT_KB": "500",
		"JOB_CANCEL_POLL": "10ms", "RABBITMQ_CONSUMER_TIMEOUT": "1m"}
	_, err = loadConfig(env(vars))
	if err == nil {
		t.Fatal("want an error")
	}
	for k := range vars {
		if k != "JOB_STORE_BUCKET" && !strings.Contains(err.Error(), k) {
			t.Errorf("error does not name %s: %v", k, err)
		}
	}
	_, err = loadConfig(env(map[string]string{"RABBITMQ_CONSUMER_TIMEOUT": "15m", "JOB_LEASE": "10m"}))
	if err == nil || !strings.Contains(err.Error(), "JOB_LEASE") {
		t.Fatalf("a lease as long as the consumer timeout less the margin: %v", err)
	}
}
