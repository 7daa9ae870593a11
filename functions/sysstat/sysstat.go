// Package sysstat samples system-wide memory and CPU usage from /proc, for GET /status and the local
// gateway's gauges.
package sysstat

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sampler reports system-wide memory and CPU usage in percent, from /proc. CPU usage is measured between
// two samples of /proc/stat: the previous call's (when more recent than Window, default 10 s) or one taken
// 100 ms earlier. The zero value is ready to use; it is safe for concurrent use.
type Sampler struct {
	// Window is how old the previous CPU sample may be to measure against it (default 10 s).
	Window   time.Duration
	mu       sync.Mutex
	lastIdle uint64
	lastAll  uint64
	lastAt   time.Time
}

// MemoryPercent is the memory in use (total minus available), in percent of the total.
func (s *Sampler) MemoryPercent() (float64, error) {
	f, err := os.Open("/proc/meminfo")
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

func readCPU() (idle, all uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fields := strings.Fields(line)
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0, 0, fmt.Errorf("unexpected /proc/stat")
	}
	for i, f := range fields[1:] {
		v, _ := strconv.ParseUint(f, 10, 64)
		all += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	return idle, all, nil
}

// CPUPercent is the CPU busy time since the previous sample, in percent of all cores.
func (s *Sampler) CPUPercent() (float64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	window := s.Window
	if window <= 0 {
		window = 10 * time.Second
	}
	if time.Since(s.lastAt) > window {
		idle, all, err := readCPU()
		if err != nil {
			return 0, err
		}
		s.lastIdle, s.lastAll = idle, all
		time.Sleep(100 * time.Millisecond)
	}
	idle, all, err := readCPU()
	if err != nil {
		return 0, err
	}
	dIdle, dAll := idle-s.lastIdle, all-s.lastAll
	s.lastIdle, s.lastAll, s.lastAt = idle, all, time.Now()
	if dAll == 0 {
		return 0, nil
	}
	return round1(100 * float64(dAll-dIdle) / float64(dAll)), nil
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }
