// Package sysstat samples memory and CPU usage — of the container's cgroup when it has a limit (a Fargate
// task, a docker --memory/--cpus container), else of the whole system from /proc — for GET /status, the
// gateway's gauges and the worker's admission control.
package sysstat

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sampler reports memory and CPU usage in percent. When the process's cgroup (v2, or v1's memory and
// cpu/cpuacct controllers) sets a limit, usage is against that limit: a 1-vCPU task on a 16-core host is at
// 100 % when it uses one core. Otherwise it is system-wide, from /proc. CPU usage is measured between two
// samples: the previous call's (when more recent than Window, default 10 s) or one taken 100 ms earlier.
// The zero value is ready to use; it is safe for concurrent use.
type Sampler struct {
	// Window is how old the previous CPU sample may be to measure against it (default 10 s).
	Window time.Duration
	// Root is prepended to every path read (tests point it at a fake tree); "" is the real one.
	Root string

	mu     sync.Mutex
	last   cpuSample
	lastAt time.Time
}

// cpuSample is a point of CPU accounting: busy and total time in the same unit.
type cpuSample struct{ busy, total float64 }

func (s *Sampler) path(p string) string { return filepath.Join(s.Root, p) }

func (s *Sampler) read(p string) (string, error) {
	b, err := os.ReadFile(s.path(p))
	return strings.TrimSpace(string(b)), err
}

// unlimited is where a cgroup v1 limit means "none" (the kernel writes a page-rounded 2^63-1).
const unlimited = 1 << 62

// MemoryPercent is the memory in use, in percent of the cgroup's limit, or of the system's total (total
// minus available) when there is none.
func (s *Sampler) MemoryPercent() (float64, error) {
	if used, limit, ok := s.cgroupMemory(); ok {
		return round1(100 * used / limit), nil
	}
	f, err := os.Open(s.path("/proc/meminfo"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total, avail float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case "MemTotal:":
			total = v
		case "MemAvailable:":
			avail = v
		}
	}
	if total == 0 {
		return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
	}
	return round1(100 * (total - avail) / total), nil
}

// MemoryLimit is the memory the process may use, in bytes: its cgroup's limit, else the machine's total
// (0 when neither can be read).
func (s *Sampler) MemoryLimit() int64 {
	if _, limit, ok := s.cgroupMemory(); ok {
		return int64(limit)
	}
	f, err := os.Open(s.path("/proc/meminfo"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cgroupMemory reads the cgroup's memory use and limit; ok is false without a limit.
func (s *Sampler) cgroupMemory() (used, limit float64, ok bool) {
	if max, err := s.read("/sys/fs/cgroup/memory.max"); err == nil { // v2
		if max == "max" {
			return 0, 0, false
		}
		cur, err := s.read("/sys/fs/cgroup/memory.current")
		l, err2 := strconv.ParseFloat(max, 64)
		u, err3 := strconv.ParseFloat(cur, 64)
		return u, l, errors.Join(err, err2, err3) == nil && l > 0
	}
	lim, err := s.read("/sys/fs/cgroup/memory/memory.limit_in_bytes") // v1
	if err != nil {
		return 0, 0, false
	}
	usage, err := s.read("/sys/fs/cgroup/memory/memory.usage_in_bytes")
	l, err2 := strconv.ParseFloat(lim, 64)
	u, err3 := strconv.ParseFloat(usage, 64)
	if errors.Join(err, err2, err3) != nil || l <= 0 || l >= unlimited {
		return 0, 0, false
	}
	return u, l, true
}

// CPUs is how many CPUs the cgroup's quota grants (fractional), or 0 when it sets none.
func (s *Sampler) CPUs() float64 {
	if v, err := s.read("/sys/fs/cgroup/cpu.max"); err == nil { // v2: "quota period" or "max period"
		f := strings.Fields(v)
		if len(f) == 2 && f[0] != "max" {
			q, err1 := strconv.ParseFloat(f[0], 64)
			p, err2 := strconv.ParseFloat(f[1], 64)
			if err1 == nil && err2 == nil && q > 0 && p > 0 {
				return q / p
			}
		}
		return 0
	}
	q, err1 := s.read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us") // v1: -1 when unlimited
	p, err2 := s.read("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
	if errors.Join(err1, err2) != nil {
		return 0
	}
	qv, err1 := strconv.ParseFloat(q, 64)
	pv, err2 := strconv.ParseFloat(p, 64)
	if errors.Join(err1, err2) != nil || qv <= 0 || pv <= 0 {
		return 0
	}
	return qv / pv
}

// sampleCPU reads a point of CPU accounting: the cgroup's usage against its quota when it has one
// (seconds of CPU used, seconds of CPU granted), else /proc/stat's busy and total ticks.
func (s *Sampler) sampleCPU(now time.Time) (cpuSample, error) {
	if cpus := s.CPUs(); cpus > 0 {
		granted := cpus * float64(now.UnixNano()) / 1e9
		if v, err := s.read("/sys/fs/cgroup/cpu.stat"); err == nil { // v2: usage_usec
			for line := range strings.Lines(v) {
				if f := strings.Fields(line); len(f) == 2 && f[0] == "usage_usec" {
					u, err := strconv.ParseFloat(f[1], 64)
					return cpuSample{busy: u / 1e6, total: granted}, err
				}
			}
		}
		if v, err := s.read("/sys/fs/cgroup/cpuacct/cpuacct.usage"); err == nil { // v1: nanoseconds
			u, err := strconv.ParseFloat(v, 64)
			return cpuSample{busy: u / 1e9, total: granted}, err
		}
	}
	b, err := os.ReadFile(s.path("/proc/stat"))
	if err != nil {
		return cpuSample{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return cpuSample{}, fmt.Errorf("unexpected /proc/stat")
	}
	var idle, all float64
	for i, f := range fields[1:] {
		v, _ := strconv.ParseFloat(f, 64)
		all += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return cpuSample{busy: all - idle, total: all}, nil
}

// CPUPercent is the CPU busy time since the previous sample, in percent of the cgroup's quota or of all
// cores.
func (s *Sampler) CPUPercent() (float64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	window := s.Window
	if window <= 0 {
		window = 10 * time.Second
	}
	if time.Since(s.lastAt) > window {
		first, err := s.sampleCPU(time.Now())
		if err != nil {
			return 0, err
		}
		s.last = first
		time.Sleep(100 * time.Millisecond)
	}
	now := time.Now()
	cur, err := s.sampleCPU(now)
	if err != nil {
		return 0, err
	}
	dBusy, dAll := cur.busy-s.last.busy, cur.total-s.last.total
	s.last, s.lastAt = cur, now
	if dAll <= 0 {
		return 0, nil
	}
	return round1(min(100, max(0, 100*dBusy/dAll))), nil
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
