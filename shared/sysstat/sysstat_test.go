package sysstat

import (
	"os"
	"path/filepath"
	"testing"
)

func TestSamplerReadsProc(t *testing.T) {
	t.Parallel()
	var s Sampler
	m, err := s.MemoryPercent()
	if err != nil || m <= 0 || m > 100 {
		t.Fatalf("memory %v%% %v", m, err)
	}
	for range 2 { // the first call samples twice, the second measures against the first
		c, err := s.CPUPercent()
		if err != nil || c < 0 || c > 100 {
			t.Fatalf("cpu %v%% %v", c, err)
		}
	}
}

func fakeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const meminfo = "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    250 kB\n"

func TestMemoryFollowsTheCgroupLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  float64
	}{
		{"v2 limit", map[string]string{"sys/fs/cgroup/memory.max": "2048\n", "sys/fs/cgroup/memory.current": "512\n", "proc/meminfo": meminfo}, 25},
		{"v2 no limit: the system", map[string]string{"sys/fs/cgroup/memory.max": "max\n", "sys/fs/cgroup/memory.current": "512\n", "proc/meminfo": meminfo}, 75},
		{"v1 limit", map[string]string{"sys/fs/cgroup/memory/memory.limit_in_bytes": "1000", "sys/fs/cgroup/memory/memory.usage_in_bytes": "900", "proc/meminfo": meminfo}, 90},
		{"v1 unlimited: the system", map[string]string{"sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712", "sys/fs/cgroup/memory/memory.usage_in_bytes": "900", "proc/meminfo": meminfo}, 75},
		{"no cgroup files", map[string]string{"proc/meminfo": meminfo}, 75},
	} {
		s := Sampler{Root: fakeTree(t, tc.files)}
		got, err := s.MemoryPercent()
		if err != nil || got != tc.want {
			t.Errorf("%s: %v%% (%v), want %v%%", tc.name, got, err, tc.want)
		}
	}
}

func TestCPUQuota(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  float64
	}{
		{"v2 one and a half CPUs", map[string]string{"sys/fs/cgroup/cpu.max": "150000 100000"}, 1.5},
		{"v2 unlimited", map[string]string{"sys/fs/cgroup/cpu.max": "max 100000"}, 0},
		{"v1 a quarter CPU", map[string]string{"sys/fs/cgroup/cpu/cpu.cfs_quota_us": "25000", "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000"}, 0.25},
		{"v1 unlimited", map[string]string{"sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1", "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000"}, 0},
		{"none", nil, 0},
	} {
		s := Sampler{Root: fakeTree(t, tc.files)}
		if got := s.CPUs(); got != tc.want {
			t.Errorf("%s: %v CPUs, want %v", tc.name, got, tc.want)
		}
	}
}

func TestCPUPercentAgainstTheQuota(t *testing.T) {
	t.Parallel()
	root := fakeTree(t, map[string]string{"sys/fs/cgroup/cpu.max": "100000 100000", "sys/fs/cgroup/cpu.stat": "usage_usec 0\nuser_usec 0\n"})
	s := Sampler{Root: root}
	// The first call samples, waits 100 ms and samples again: no usage in between is 0 %.
	if got, err := s.CPUPercent(); err != nil || got != 0 {
		t.Fatalf("idle cgroup: %v%% (%v)", got, err)
	}
	// 10 s of CPU "used" since: far more than one CPU could in the time, so it is capped at 100 %.
	if err := os.WriteFile(filepath.Join(root, "sys/fs/cgroup/cpu.stat"), []byte("usage_usec 10000000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := s.CPUPercent(); err != nil || got != 100 {
		t.Fatalf("saturated cgroup: %v%% (%v), want 100", got, err)
	}
}

func TestMemoryLimit(t *testing.T) {
	t.Parallel()
	if got := (&Sampler{Root: fakeTree(t, map[string]string{"sys/fs/cgroup/memory.max": "2048\n", "sys/fs/cgroup/memory.current": "1\n", "proc/meminfo": meminfo})}).MemoryLimit(); got != 2048 {
		t.Errorf("cgroup limit: %d, want 2048", got)
	}
	if got := (&Sampler{Root: fakeTree(t, map[string]string{"proc/meminfo": meminfo})}).MemoryLimit(); got != 1000<<10 {
		t.Errorf("no cgroup: %d, want MemTotal %d", got, 1000<<10)
	}
}
