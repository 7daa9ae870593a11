package runner

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/config"
)

func loadConfig(kv map[string]string) (Config, error) {
	e := config.NewEnv(func(k string) string { return kv[k] })
	c := LoadConfig(e, "/w", 4)
	return c, e.Err()
}

func TestLoadConfigDefaults(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Python != "python3" || c.WorkDir != "/w" || c.MaxResultBytes != 400*1024 || c.MemoryLimitBytes != 1<<30 ||
		c.Warm != (WarmConfig{MaxRequests: 10_000, IdleTimeout: time.Minute, MaxIdle: 8, MaxCalls: 256, MaxThreads: 64,
			LoopLagLimit: 2 * time.Second, MaxRSSBytes: 512 << 20}) ||
		c.Containment != ContainAuto || c.MaxProcesses != 1024 || c.RunAs != nil || !c.ProtectSecrets || c.MaxFileBytes != 1<<30 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestLoadConfigMaxFile(t *testing.T) {
	t.Parallel()
	if c, err := loadConfig(map[string]string{"SCRIPT_MAX_FILE_MB": "50"}); err != nil || c.MaxFileBytes != 50<<20 {
		t.Fatalf("50 MiB: %d %v", c.MaxFileBytes, err)
	}
	if c, err := loadConfig(map[string]string{"SCRIPT_MAX_FILE_MB": "0"}); err != nil || c.MaxFileBytes != -1 {
		t.Fatalf("0 (no limit): %d %v", c.MaxFileBytes, err)
	}
	if _, err := loadConfig(map[string]string{"SCRIPT_MAX_FILE_MB": "-3"}); err == nil || !strings.Contains(err.Error(), "SCRIPT_MAX_FILE_MB") {
		t.Fatalf("-3: %v", err)
	}
}

// The SCRIPT_RUN_AS, containment and process-limit cases of the former worker/internal/config's security_test.go.
func TestLoadConfigSecurity(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(map[string]string{"SCRIPT_RUN_AS": "10002", "SCRIPT_CONTAINMENT": "session",
		"SCRIPT_MAX_PROCESSES": "0", "WORKER_PROTECT_SECRETS": "false"})
	if err != nil || c.RunAs == nil || *c.RunAs != (Credential{UID: 10002, GID: 10002}) || c.Containment != ContainSession ||
		c.MaxProcesses != -1 || c.ProtectSecrets {
		t.Fatalf("set: %+v %v", c, err)
	}
	if c, _ = loadConfig(map[string]string{"SCRIPT_RUN_AS": "10002:65534"}); c.RunAs == nil || c.RunAs.GID != 65534 {
		t.Fatalf("uid:gid: %+v", c.RunAs)
	}
	_, err = loadConfig(map[string]string{"SCRIPT_RUN_AS": "nobody", "SCRIPT_CONTAINMENT": "vm"})
	if err == nil || !strings.Contains(err.Error(), "SCRIPT_RUN_AS") || !strings.Contains(err.Error(), "SCRIPT_CONTAINMENT") {
		t.Fatalf("errors: %v", err)
	}
	if _, err = loadConfig(map[string]string{"SCRIPT_RUN_AS": "0"}); err == nil {
		t.Fatal("root accepted as the scripts' user")
	}
}

func TestLoadConfigReportsEveryProblem(t *testing.T) {
	t.Parallel()
	env := map[string]string{"WARM_RUNNER_MAX_REQUESTS": "0", "WARM_RUNNER_IDLE_TIMEOUT": "forever",
		"SCRIPT_MAX_RESULT_BYTES": "1", "SCRIPT_MEMORY_LIMIT_MB": "-1", "WARM_RUNNER_MAX_IDLE": "x", "WORKER_PROTECT_SECRETS": "maybe"}
	_, err := loadConfig(env)
	for k := range env {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("error does not name %s: %v", k, err)
		}
	}
}

func TestLoadConfigSharedRunners(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(map[string]string{"WARM_RUNNER_MAX_CALLS": "16", "WARM_RUNNER_MAX_THREADS": "8",
		"WARM_LOOP_LAG_LIMIT": "500ms", "WARM_RUNNER_MAX_RSS_MB": "0", "WARM_RUNNER_FORK": "false"})
	if err != nil || c.Warm.MaxCalls != 16 || c.Warm.MaxThreads != 8 || c.Warm.LoopLagLimit != 500*time.Millisecond || c.Warm.MaxRSSBytes != -1 || !c.Warm.NoFork {
		t.Fatalf("set: %+v %v", c.Warm, err)
	}
	if c, err := loadConfig(nil); err != nil || c.Warm.NoFork {
		t.Fatalf("default: runners not forked (%+v, %v)", c.Warm, err)
	}
	// A threads runner never serves more calls at once than a shared runner may.
	if w := (WarmConfig{MaxCalls: 16, MaxThreads: 64}).withDefaults(); w.MaxThreads != 16 {
		t.Fatalf("MaxThreads %d past MaxCalls 16", w.MaxThreads)
	}
	env := map[string]string{"WARM_RUNNER_MAX_CALLS": "0", "WARM_RUNNER_MAX_THREADS": "0", "WARM_LOOP_LAG_LIMIT": "1ms", "WARM_RUNNER_MAX_RSS_MB": "-5",
		"WARM_RUNNER_FORK": "sometimes"}
	_, err = loadConfig(env)
	for k := range env {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("error does not name %s: %v", k, err)
		}
	}
}

// SCRIPT_UID_RANGE: a range of uids, a uid per script picked from its name (stable, inside the range);
// malformed ranges, root, and SCRIPT_RUN_AS alongside are refused with the variable named.
func TestLoadConfigUIDRange(t *testing.T) {
	t.Parallel()
	c, err := loadConfig(map[string]string{"SCRIPT_UID_RANGE": "200000-265535", "SCRIPT_CONTAINMENT": "namespaces"})
	if err != nil || c.UIDRange == nil || *c.UIDRange != (UIDRange{First: 200000, Count: 65536}) || c.Containment != ContainNamespaces {
		t.Fatalf("set: %+v %v", c.UIDRange, err)
	}
	if c.UIDRange.String() != "200000-265535" {
		t.Errorf("String() = %q", c.UIDRange.String())
	}
	seen := map[uint32]bool{}
	for _, name := range []string{"a", "b", "example_scraper", "quotes_scraper", "x.y"} {
		uid := c.UIDRange.uidFor(name)
		if uid < 200000 || uid > 265535 || uid != c.UIDRange.uidFor(name) {
			t.Errorf("uidFor(%q) = %d", name, uid)
		}
		seen[uid] = true
	}
	if len(seen) < 4 {
		t.Errorf("five scripts got %d uids", len(seen))
	}
	if one := (UIDRange{First: 5000, Count: 1}); one.uidFor("anything") != 5000 {
		t.Error("a range of one uid")
	}
	for _, bad := range []string{"200000", "0-10", "10-5", "a-b", "1-4294967295", "1-20000000"} {
		if _, err := loadConfig(map[string]string{"SCRIPT_UID_RANGE": bad}); err == nil || !strings.Contains(err.Error(), "SCRIPT_UID_RANGE") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := loadConfig(map[string]string{"SCRIPT_UID_RANGE": "200000-265535", "SCRIPT_RUN_AS": "10002"}); err == nil ||
		!strings.Contains(err.Error(), "exclude each other") {
		t.Errorf("both set: %v", err)
	}
}

// SCRIPT_HIDE_PATHS: /run/secrets by default; a list of absolute paths, cleaned; none hides nothing more;
// relative paths and / are refused. SCRIPT_CONTAINMENT=userns is a containment.
func TestLoadConfigHidePaths(t *testing.T) {
	t.Parallel()
	if c, err := loadConfig(nil); err != nil || !slices.Equal(c.HidePaths, []string{"/run/secrets"}) {
		t.Fatalf("default: %q %v", c.HidePaths, err)
	}
	c, err := loadConfig(map[string]string{"SCRIPT_HIDE_PATHS": " /run/secrets/ , /etc/worker.conf,", "SCRIPT_CONTAINMENT": "userns"})
	if err != nil || !slices.Equal(c.HidePaths, []string{"/run/secrets", "/etc/worker.conf"}) || c.Containment != ContainUserns {
		t.Fatalf("set: %q %q %v", c.HidePaths, c.Containment, err)
	}
	if c, err := loadConfig(map[string]string{"SCRIPT_HIDE_PATHS": "none"}); err != nil || len(c.HidePaths) != 0 {
		t.Fatalf("none: %q %v", c.HidePaths, err)
	}
	for _, bad := range []string{"run/secrets", "/", "/run/secrets,/.."} {
		if _, err := loadConfig(map[string]string{"SCRIPT_HIDE_PATHS": bad}); err == nil || !strings.Contains(err.Error(), "SCRIPT_HIDE_PATHS") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
