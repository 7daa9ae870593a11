package admission

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestGrowsWithDemandWhileHealthy(t *testing.T) {
	t.Parallel()
	c := New(Config{Ceiling: 256, Initial: 16})
	n := 16
	for step := 0; n < 256; step++ {
		if step > 30 {
			t.Fatalf("capacity %d after 30 healthy steps with a full pipeline; want the ceiling 256", n)
		}
		n = c.Step(Signals{CPU: 0.3, Memory: 0.4, InFlight: n})
	}
	if got := c.Step(Signals{CPU: 0.3, Memory: 0.4, InFlight: 256}); got != 256 {
		t.Fatalf("capacity %d past the ceiling", got)
	}
	if _, state, _ := c.Capacity(); state != Holding {
		t.Errorf("at the ceiling the state is %s, want holding", state)
	}
}

func TestHoldsWithoutDemand(t *testing.T) {
	t.Parallel()
	c := New(Config{Initial: 16})
	for range 10 {
		if n := c.Step(Signals{CPU: 0.1, Memory: 0.1, InFlight: 3}); n != 16 {
			t.Fatalf("capacity moved to %d with 3 of 16 in flight", n)
		}
	}
}

func TestBacksOffOnEachSignalAndRecovers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		sig  Signals
	}{
		{"cpu", Signals{CPU: 0.97, OwnCPU: 0.8, Memory: 0.2, InFlight: 64}},
		{"memory", Signals{CPU: 0.2, Memory: 0.9, InFlight: 64}},
		{"event-loop lag", Signals{CPU: 0.2, Memory: 0.2, LoopLag: time.Second, InFlight: 64}},
	} {
		c := New(Config{Initial: 64, Floor: 2})
		n := c.Step(tc.sig)
		if n != 48 {
			t.Errorf("%s: capacity %d after one overloaded step from 64, want 48", tc.name, n)
		}
		_, state, reason := c.Capacity()
		if state != BackingOff || reason == "" {
			t.Errorf("%s: state %s (%q), want backing_off with a reason", tc.name, state, reason)
		}
		for range 50 {
			n = c.Step(tc.sig)
		}
		if n != 2 {
			t.Errorf("%s: capacity %d under a lasting overload, want the floor 2", tc.name, n)
		}
		for range 50 {
			n = c.Step(Signals{CPU: 0.2, Memory: 0.2, InFlight: n})
		}
		if n != DefaultCeiling {
			t.Errorf("%s: capacity %d after the overload passed, want it back at the ceiling %d", tc.name, n, DefaultCeiling)
		}
	}
}

type fakeSampler struct {
	mu  sync.Mutex
	sig []Signals
}

func (f *fakeSampler) Sample() (Signals, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.sig) == 0 {
		return Signals{}, errors.New("no more samples")
	}
	s := f.sig[0]
	f.sig = f.sig[1:]
	return s, nil
}

func TestRunAppliesChangesOnly(t *testing.T) {
	t.Parallel()
	c := New(Config{Initial: 4, Ceiling: 8, Interval: time.Millisecond})
	s := &fakeSampler{sig: []Signals{
		{InFlight: 0},                    // holds at 4: applied once (the first)
		{InFlight: 0},                    // holds: not applied again
		{InFlight: 4},                    // grows to 6
		{CPU: 1, OwnCPU: 1, InFlight: 6}, // backs off to 5
		{CPU: 1, OwnCPU: 1, InFlight: 5}, // 4
		{InFlight: 3}, {InFlight: 0},     // 6, then holds
	}}
	ctx, cancel := context.WithCancel(context.Background())
	var got []int
	done := make(chan struct{})
	go func() {
		c.Run(ctx, s, func(n int) { got = append(got, n) })
		close(done)
	}()
	for {
		s.mu.Lock()
		left := len(s.sig)
		s.mu.Unlock()
		if left == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	want := []int{4, 6, 5, 4, 6}
	if len(got) != len(want) {
		t.Fatalf("applied %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("applied %v, want %v", got, want)
		}
	}
}

// A machine saturated by other processes is no reason to take fewer scrapes: only the worker's own share of
// the CPU makes high CPU an overload.
func TestCPUOfOthersIsNoOverload(t *testing.T) {
	t.Parallel()
	c := New(Config{Initial: 16})
	if n := c.Step(Signals{CPU: 1, OwnCPU: 0.1, Memory: 0.2, InFlight: 16}); n != 24 {
		t.Fatalf("capacity %d with the CPU busy with others' work and a full pipeline, want it to grow to 24", n)
	}
	if n := c.Step(Signals{CPU: 1, OwnCPU: 0.5, Memory: 0.2, InFlight: 24}); n != 18 {
		t.Fatalf("capacity %d with the worker's own tree using half the CPUs, want a back-off to 18", n)
	}
}

// High CPU while warm runners start holds the capacity: the starts are a one-off cost of the demand, and
// cutting would only delay the runners still needed. Once none starts, high CPU cuts as before; memory and
// loop lag cut whatever starts.
func TestRunnerStartsHoldTheCapacity(t *testing.T) {
	t.Parallel()
	c := New(Config{Initial: 16})
	starting := Signals{CPU: 1, OwnCPU: 0.6, Memory: 0.2, InFlight: 16, RunnersStarted: 9}
	if n := c.Step(starting); n != 16 {
		t.Fatalf("capacity %d with the CPU busy starting 9 runners, want it held at 16", n)
	}
	if _, state, reason := c.Capacity(); state != Holding || !strings.Contains(reason, "9 runners started") {
		t.Fatalf("state %s (%q), want holding, naming the starts", state, reason)
	}
	// The runners are up and the load is healthy: the demand grows the capacity.
	if n := c.Step(Signals{CPU: 0.6, OwnCPU: 0.4, Memory: 0.2, InFlight: 16}); n != 24 {
		t.Fatalf("capacity %d once the starts are over, want 24", n)
	}
	// The scrapes themselves keep the CPU busy, with no start: that is an overload.
	if n := c.Step(Signals{CPU: 1, OwnCPU: 0.6, Memory: 0.2, InFlight: 24}); n != 18 {
		t.Fatalf("capacity %d with the CPU busy and no runner starting, want a back-off to 18", n)
	}
	for _, sig := range []Signals{
		{CPU: 1, OwnCPU: 0.6, Memory: 0.95, InFlight: 18, RunnersStarted: 3},
		{CPU: 1, OwnCPU: 0.6, Memory: 0.2, LoopLag: time.Second, InFlight: 18, RunnersStarted: 3},
	} {
		before, _, _ := c.Capacity()
		if n := c.Step(sig); n >= before {
			t.Fatalf("capacity %d from %d with %+v, want a back-off whatever starts", n, before, sig)
		}
	}
}
