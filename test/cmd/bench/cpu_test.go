package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeProc writes a fake /proc under root: the machine's cpu line and one stat line per process
// (pid: name, ppid, utime, stime, start time).
func writeProc(t *testing.T, root string, cpu string, procs map[int][5]any) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(root, "proc")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "proc", "stat"), []byte(cpu+"\ncpu0 1 2 3 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for pid, p := range procs {
		dir := filepath.Join(root, "proc", fmt.Sprint(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// Fields 3..22: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
		// cutime cstime priority nice threads itrealvalue starttime. Reaped children's time (cutime) is
		// large and never counted.
		line := fmt.Sprintf("%d (%s) S %d 1 1 0 -1 0 0 0 0 0 %d %d 999 999 20 0 1 0 %d 0 0\n", pid, p[0], p[1], p[2], p[3], p[4])
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Through three readings each role gets what its processes used: the broker by name, the gateway's and the
// workers' trees, the bench itself. A runner that ended after the second reading counts up to it; one
// that started during the period counts from 0; a new process that reuses an old one's pid is another
// process; processes of no role count in the machine's time only.
func TestCPUTrackerAddsUpRoles(t *testing.T) {
	root := t.TempDir()
	roles := cpuRoles{gateway: []int{10}, workers: []int{20}, self: 30}
	readings := []struct {
		cpu   string
		procs map[int][5]any
	}{
		{"cpu  1000 0 500 9000 100 0 50 0 0 0", map[int][5]any{
			1:  {"beam.smp", 0, 100, 50, 1},
			10: {"gateway-local", 30, 40, 10, 5},
			20: {"worker", 30, 60, 20, 5},
			21: {"python3", 20, 1, 1, 6},
			22: {"python3 (x) y", 21, 30, 10, 6}, // a name with spaces and parentheses
			30: {"bench", 1, 20, 10, 4},
			40: {"postgres", 1, 7, 0, 1},
		}},
		{"cpu  1030 0 520 9050 100 0 52 0 0 0", map[int][5]any{
			1:  {"beam.smp", 0, 110, 55, 1},
			10: {"gateway-local", 30, 45, 12, 5},
			20: {"worker", 30, 65, 21, 5},
			21: {"python3", 20, 1, 1, 6},
			22: {"python3 (x) y", 21, 36, 12, 6}, // +8, then it ends
			23: {"exe", 20, 3, 1, 50},            // starts: +4
			30: {"bench", 1, 22, 11, 4},
			40: {"postgres", 1, 12, 0, 1},
		}},
		{"cpu  1060 0 540 9100 100 0 55 0 0 0", map[int][5]any{
			1:  {"beam.smp", 0, 120, 60, 1},
			10: {"gateway-local", 30, 50, 15, 5},
			20: {"worker", 30, 70, 22, 5},
			23: {"python3", 20, 6, 2, 50}, // +4 since
			22: {"python3", 20, 2, 1, 90}, // pid 22 again, another process: +3
			30: {"bench", 1, 24, 12, 4},
			40: {"postgres", 1, 16, 0, 1},
		}},
	}
	c := &cpuTracker{roles: roles}
	for _, r := range readings {
		writeProc(t, root, r.cpu, r.procs)
		got, err := readProcTimes(root)
		if err != nil {
			t.Fatal(err)
		}
		c.add(got)
	}
	got := c.parts()
	want := cpuParts{machine: 1.05, broker: 0.30, gateway: 0.15, workers: 0.12, runners: 0.08 + 0.08 + 0.03, callers: 0.06}
	for _, v := range []struct {
		name      string
		got, want float64
	}{{"machine", got.machine, want.machine}, {"broker", got.broker, want.broker}, {"gateway", got.gateway, want.gateway},
		{"workers", got.workers, want.workers}, {"runners", got.runners, want.runners}, {"callers", got.callers, want.callers},
		{"other", got.other(), 1.05 - 0.30 - 0.15 - 0.12 - 0.19 - 0.06}} {
		if math.Abs(v.got-v.want) > 1e-9 {
			t.Errorf("%s: %.3f s, want %.3f s", v.name, v.got, v.want)
		}
	}
}

// The probe reads /proc through the period it is given and no longer.
func TestCPUProbeMeasuresUntilTheEnd(t *testing.T) {
	root := t.TempDir()
	writeProc(t, root, "cpu  1000 0 500 9000 100 0 50 0 0 0", map[int][5]any{30: {"bench", 1, 20, 10, 4}})
	p := &cpuProbe{roles: cpuRoles{self: 30}, root: root, every: 5 * time.Millisecond}
	go func() {
		time.Sleep(30 * time.Millisecond)
		writeProc(t, root, "cpu  1100 0 500 9000 100 0 50 0 0 0", map[int][5]any{30: {"bench", 1, 70, 10, 4}})
	}()
	got, err := p.measure(t.Context(), time.Now().Add(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got.callers-0.5) > 1e-9 || math.Abs(got.machine-1.0) > 1e-9 {
		t.Fatalf("measured %+v; want the bench's 0.5 s and the machine's 1 s written 30 ms in", got)
	}
	if _, err := (&cpuProbe{root: t.TempDir()}).measure(t.Context(), time.Now()); err == nil {
		t.Fatal("no error without a /proc")
	}
}

// parseBusy counts user, nice, system, irq, softirq and steal, not idle, iowait or guest time.
func TestParseBusy(t *testing.T) {
	got, err := parseBusy("cpu  10 1 20 500 7 2 3 4 6 0\ncpu0 ...")
	if err != nil || got != 10+1+20+2+3+4 {
		t.Fatalf("parseBusy = %v, %v; want 40", got, err)
	}
	for _, bad := range []string{"", "intr 1 2 3 4 5", "cpu 1 2 x 4 5"} {
		if _, err := parseBusy(bad); err == nil {
			t.Errorf("parseBusy(%q): no error", bad)
		}
	}
}
