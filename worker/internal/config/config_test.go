package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.TaskQueue != "scraping_tasks" || c.RepositoryType != "local" || c.RepositoryURL != "./scripts" ||
		c.Concurrency < 1 || c.DrainTimeout != 25*time.Second || c.WorkerID == "" || c.MemoryLimitBytes != 1<<30 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	env := map[string]string{"WORKER_CONCURRENCY": "0", "SCRIPT_REPOSITORY_TYPE": "ftp", "WORKER_DRAIN_TIMEOUT": "forever"}
	_, err := Load(func(k string) string { return env[k] })
	if err == nil {
		t.Fatal("want an error")
	}
	for k := range env {
		if !strings.Contains(err.Error(), k) {
			t.Errorf("error does not name %s: %v", k, err)
		}
	}
}

func TestLoadExec(t *testing.T) {
	t.Parallel()
	c, err := LoadExec(func(string) string { return "" }, "/w", 4)
	if err != nil {
		t.Fatal(err)
	}
	if c.EnvCacheDir != "/w/envs" || c.Isolation != "warm" || c.WarmMaxIdle != 8 || c.EnvCacheMaxBytes != 5120<<20 {
		t.Fatalf("defaults: %+v", c)
	}
	env := map[string]string{"SCRIPT_ISOLATION": "vm", "WARM_RUNNER_MAX_REQUESTS": "0", "ENV_BUILD_TIMEOUT": "1s"}
	_, err = LoadExec(func(k string) string { return env[k] }, "/w", 4)
	for k := range env {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("error does not name %s: %v", k, err)
		}
	}
}
