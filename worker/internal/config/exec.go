package config

import (
	"path/filepath"
	"time"

	sharedconfig "github.com/scrapeplatform/platform/shared/config"
)

// Exec configures how scripts run: dependency environments and warm runners.
type Exec struct {
	// EnvCacheDir holds the per-requirements virtual environments.
	EnvCacheDir string
	// EnvCacheMaxBytes bounds the environment cache; least recently used environments go first.
	EnvCacheMaxBytes int64
	// EnvBuildTimeout bounds one pip install.
	EnvBuildTimeout time.Duration
	// Isolation is the default for scripts without a manifest: "warm" or "process".
	Isolation string
	// WarmMaxRequests, WarmIdleTimeout and WarmMaxIdle bound the warm runners.
	WarmMaxRequests int
	WarmIdleTimeout time.Duration
	WarmMaxIdle     int
}

// LoadExec reads the script execution settings; workDir is the worker's WORKER_WORK_DIR.
func LoadExec(getenv func(string) string, workDir string, concurrency int) (Exec, error) {
	e := sharedconfig.NewEnv(getenv)
	c := Exec{
		EnvCacheDir:      e.String("ENV_CACHE_DIR", filepath.Join(workDir, "envs")),
		EnvCacheMaxBytes: int64(e.Int("ENV_CACHE_MAX_MB", 5120, 0, 1<<22)) << 20,
		EnvBuildTimeout:  e.Duration("ENV_BUILD_TIMEOUT", 10*time.Minute, 10*time.Second, 2*time.Hour),
		Isolation:        e.OneOf("SCRIPT_ISOLATION", "warm", "warm", "process"),
		WarmMaxRequests:  e.Int("WARM_RUNNER_MAX_REQUESTS", 1000, 1, 1_000_000),
		WarmIdleTimeout:  e.Duration("WARM_RUNNER_IDLE_TIMEOUT", 60*time.Second, time.Second, 24*time.Hour),
		WarmMaxIdle:      e.Int("WARM_RUNNER_MAX_IDLE", 2*concurrency, 0, 4096),
	}
	return c, e.Err()
}
