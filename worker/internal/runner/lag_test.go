package runner

import (
	"sync"
	"testing"
	"time"
)

func TestLagMeterKeepsTheLargestUntilTaken(t *testing.T) {
	t.Parallel()
	var r Runner
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() { defer wg.Done(); r.loopLag.observe(time.Duration(i) * time.Millisecond) }()
	}
	wg.Wait()
	if got := r.TakeLoopLag(); got != 99*time.Millisecond {
		t.Fatalf("took %s, want the largest, 99ms", got)
	}
	if got := r.TakeLoopLag(); got != 0 {
		t.Fatalf("a second take gave %s, want 0: a new period", got)
	}
}
