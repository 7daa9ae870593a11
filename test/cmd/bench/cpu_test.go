package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// writeProc writes a fake /proc under root: the machine's cpu line and one stat line per process
// (pid: name, ppid, utime, stime, cutime, cstime).
func writeProc(t *testing.T, root string, cpu string, procs map[int][6]any) {
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
		// Fields 3..17: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime.
		line := fmt.Sprintf("%d (%s) S %d 1 1 0 -1 0 0 0 0 0 %d %d %d %d 20 0 1 0\n", pid, p[0], p[1], p[2], p[3], p[4], p[5])
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Between two readings each role gets what its processes used: the broker by name, the gateway's and the
// workers' trees (a runner reaped in between counted once, through its worker's reaped time), the bench
// itself; other processes count in the machine's time only.
func TestCPUPartsBetweenReadings(t *testing.T) {
	root := t.TempDir()
	roles := cpuRoles{gateway: []int{10}, workers: []int{20}, self: 30}
	writeProc(t, root, "cpu  1000 0 500 9000 100 0 50 0 0 0", map[int][6]any{
		1:  {"beam.smp", 0, 100, 50, 0, 0},
		10: {"gateway-local", 30, 40, 10, 0, 0},
		20: {"worker", 30, 60, 20, 5, 5},
		21: {"exe", 20, 1, 1, 0, 0},
		22: {"python3 (x) y", 21, 30, 10, 0, 0}, // a name with spaces and parentheses
		30: {"bench", 1, 20, 10, 0, 0},
		40: {"postgres", 1, 7, 0, 0, 0},
	})
	a, err := readProcTimes(root)
	if err != nil {
		t.Fatal(err)
	}
	// 100 ms later: the runner 22 (40 ticks so far, 10 more since) was reaped by its helper 21, which the
	// worker then reaped too (its 2 ticks and 21's reaped 50 go to the worker's reaped); a new runner 23
	// started and used 8; the broker used 30, the gateway 15, the worker itself 12, the bench 6, postgres 9.
	writeProc(t, root, "cpu  1060 0 540 9100 100 0 55 0 0 0", map[int][6]any{
		1:  {"beam.smp", 0, 120, 60, 0, 0},
		10: {"gateway-local", 30, 50, 15, 0, 0},
		20: {"worker", 30, 70, 22, 5 + 52, 5},
		23: {"python3", 20, 6, 2, 0, 0},
		30: {"bench", 1, 24, 12, 0, 0},
		40: {"postgres", 1, 16, 0, 0, 0},
	})
	b, err := readProcTimes(root)
	if err != nil {
		t.Fatal(err)
	}
	got := b.parts(roles).minus(a.parts(roles))
	want := cpuParts{machine: 1.05, broker: 0.30, gateway: 0.15, workers: 0.12, runners: 0.18, callers: 0.06}
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"machine", got.machine, want.machine}, {"broker", got.broker, want.broker}, {"gateway", got.gateway, want.gateway},
		{"workers", got.workers, want.workers}, {"runners", got.runners, want.runners}, {"callers", got.callers, want.callers},
		{"other", got.other(), 1.05 - 0.30 - 0.15 - 0.12 - 0.18 - 0.06}} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s: %.3f s, want %.3f s", c.name, c.got, c.want)
		}
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
