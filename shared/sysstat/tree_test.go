package sysstat

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	t.Parallel()
	line := "4242 (a (weird) name) S 17 4242 4242 0 -1 4194304 100 0 0 0 250 50 7 3 20 0 1 0 100 1000 10"
	ppid, ticks, ok := parseStat(line)
	if !ok || ppid != 17 || ticks != 310 {
		t.Fatalf("parseStat = %d, %v, %v; want 17, 310 ticks", ppid, ticks, ok)
	}
	if _, _, ok := parseStat("garbage"); ok {
		t.Error("garbage parsed")
	}
}

// A child that burns CPU shows in its parent's tree, and stops counting once it is gone only in the sense
// that the total never goes down.
func TestTreeCPUSecondsCountsChildren(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	var s Sampler
	before, err := s.TreeCPUSeconds(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var during float64
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if during, err = s.TreeCPUSeconds(os.Getpid()); err != nil {
			t.Fatal(err)
		}
		if during > before+0.05 {
			break
		}
	}
	_ = cmd.Wait()
	after, err := s.TreeCPUSeconds(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if during <= before || after < during {
		t.Fatalf("tree CPU %.2fs before, %.2fs while a child spins, %.2fs after it was reaped: want growth, then no loss", before, during, after)
	}
}
