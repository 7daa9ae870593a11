// Package admission decides how many scrapes a worker takes at once from what its load measures, like
// Crawlee's AutoscaledPool: capacity grows while the work in flight fills it and CPU, memory and the shared
// runners' event-loop lag are healthy, and shrinks when one of them is not. The worker applies the
// capacity as its consumer's prefetch (broker.Consumer.SetPrefetch), so it never holds deliveries it
// cannot start soon: a task waiting in one worker's buffer is a task another worker could run.
package admission

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Signals is one sample of the worker's load.
type Signals struct {
	// CPU and Memory are the used fractions (0 to 1) of what the worker may use (its cgroup's quota and
	// limit, else the machine's).
	CPU, Memory float64
	// OwnCPU is the fraction of those CPUs that the worker's own process tree (itself and its runners)
	// used: it tells load the worker's scripts cause from load other processes on the machine cause.
	OwnCPU float64
	// LoopLag is the largest event-loop lag the worker's shared async runners reported since the last
	// sample.
	LoopLag time.Duration
	// InFlight is how many scrapes run now.
	InFlight int
	// RunnersStarted is how many warm runners the worker started since the last sample, or is still
	// starting (runner.TakeWarmStarts). Their start (an interpreter, the script's imports, the
	// containment) is a one-off cost of meeting demand, and it is what saturates the CPU while a new script
	// ramps up to its demand: CPU that is high while runners start holds the capacity rather than cutting
	// it (see Step).
	RunnersStarted int
}

// State is what the last step decided.
type State string

// The states, as the worker's metrics and /status report them.
const (
	Growing    State = "growing"     // demand filled the capacity and the load is healthy: more
	Holding    State = "holding"     // healthy, but the capacity is not filled: as is
	BackingOff State = "backing_off" // a signal is past its bound: less
)

// Config bounds the controller. Zero fields take the defaults.
type Config struct {
	// Ceiling is the most scrapes in flight (WORKER_CONCURRENCY, default 1024).
	Ceiling int
	// Floor is the least capacity, however loaded the worker is (default 1).
	Floor int
	// Initial is the capacity at start (default min(Ceiling, 16)).
	Initial int
	// CPUHigh and MemoryHigh are the fractions past which the worker backs off (defaults 0.90, 0.85).
	CPUHigh, MemoryHigh float64
	// OwnCPUShare is the share of the CPUs the worker's own tree must use for high CPU to count as its
	// overload (default 0.3): on a machine it shares (make run: a broker, a gateway, two workers), CPU
	// saturated by others is no reason to run fewer I/O-bound scrapes, which would only lose throughput; in
	// a container of its own (Fargate) the worker's tree is what uses the CPU, so the rule is CPUHigh alone.
	OwnCPUShare float64
	// LagHigh is the event-loop lag past which the worker backs off (default 250 ms: well below the lag
	// that retires a runner, WARM_LOOP_LAG_LIMIT).
	LagHigh time.Duration
	// Interval is the time between samples (default 1 s).
	Interval time.Duration
}

// Defaults of Config.
const (
	DefaultCeiling    = 1024
	DefaultInitial    = 16
	DefaultCPUHigh    = 0.90
	DefaultMemoryHigh = 0.85
	DefaultOwnCPU     = 0.3
	DefaultLagHigh    = 250 * time.Millisecond
	DefaultInterval   = time.Second
)

func (c Config) withDefaults() Config {
	if c.Ceiling <= 0 {
		c.Ceiling = DefaultCeiling
	}
	if c.Floor <= 0 {
		c.Floor = 1
	}
	c.Floor = min(c.Floor, c.Ceiling)
	if c.Initial <= 0 {
		c.Initial = DefaultInitial
	}
	c.Initial = min(max(c.Initial, c.Floor), c.Ceiling)
	if c.CPUHigh <= 0 {
		c.CPUHigh = DefaultCPUHigh
	}
	if c.MemoryHigh <= 0 {
		c.MemoryHigh = DefaultMemoryHigh
	}
	if c.OwnCPUShare <= 0 {
		c.OwnCPUShare = DefaultOwnCPU
	}
	if c.LagHigh <= 0 {
		c.LagHigh = DefaultLagHigh
	}
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	return c
}

// Controller keeps the capacity. It is safe for concurrent use.
type Controller struct {
	cfg Config

	mu       sync.Mutex
	capacity int
	state    State
	reason   string
}

// New returns a controller at cfg.Initial.
func New(cfg Config) *Controller {
	cfg = cfg.withDefaults()
	return &Controller{cfg: cfg, capacity: cfg.Initial, state: Holding}
}

// Config returns the controller's configuration with its defaults applied.
func (c *Controller) Config() Config { return c.cfg }

// Capacity returns the current capacity, the last decision and why it was taken.
func (c *Controller) Capacity() (capacity int, state State, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.capacity, c.state, c.reason
}

// Step applies one sample and returns the new capacity: a quarter less (at least one) when a signal is past
// its bound (CPU only when the worker's own tree uses at least OwnCPUShare of it); half as much again (at
// least one) when the work in flight fills three quarters of it and every signal is healthy; otherwise
// unchanged. Multiplicative both ways, so 16 reaches 256 in about seven healthy seconds of demand and 1,024
// in about eleven (a thousand callers of an async script waiting 2 s each need 500 in flight per worker of
// two), and an overload halves it in about three.
//
// High CPU while warm runners started holds the capacity instead: the starts, not the scrapes, use the
// CPU then, and cutting the capacity would only delay the rest of the runners the demand needs (measured:
// 64 callers of a blocking fetch, one runner each, cut the capacity to 7 per worker in the first seconds
// and took 20-30 s to reach their demand, the CPU alternately growing and cutting it). Once the runners
// are up, high CPU with no start is the scrapes' own, and cuts as before.
func (c *Controller) Step(s Signals) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	cpuHigh := s.CPU > c.cfg.CPUHigh && s.OwnCPU >= c.cfg.OwnCPUShare
	switch {
	case s.Memory > c.cfg.MemoryHigh:
		c.backOff(fmt.Sprintf("memory %.0f%% > %.0f%%", 100*s.Memory, 100*c.cfg.MemoryHigh))
	case s.LoopLag > c.cfg.LagHigh:
		c.backOff(fmt.Sprintf("event-loop lag %s > %s", s.LoopLag.Round(time.Millisecond), c.cfg.LagHigh))
	case cpuHigh && s.RunnersStarted > 0:
		c.state, c.reason = Holding, fmt.Sprintf("cpu %.0f%% > %.0f%% while %d runners started (a one-off cost)",
			100*s.CPU, 100*c.cfg.CPUHigh, s.RunnersStarted)
	case cpuHigh:
		c.backOff(fmt.Sprintf("cpu %.0f%% > %.0f%%, %.0f%% of it this worker's", 100*s.CPU, 100*c.cfg.CPUHigh, 100*s.OwnCPU))
	case s.InFlight*4 >= c.capacity*3 && c.capacity < c.cfg.Ceiling:
		c.capacity = min(c.cfg.Ceiling, c.capacity+max(1, c.capacity/2))
		c.state, c.reason = Growing, fmt.Sprintf("%d in flight fill the capacity; load healthy", s.InFlight)
	default:
		c.state, c.reason = Holding, ""
	}
	return c.capacity
}

func (c *Controller) backOff(reason string) {
	c.capacity = max(c.cfg.Floor, c.capacity-max(1, c.capacity/4))
	c.state, c.reason = BackingOff, reason
}

// Sampler measures the signals.
type Sampler interface {
	Sample() (Signals, error)
}

// Run samples every Interval, steps, and hands every capacity that differs from the previous one to apply
// (also the first), until ctx ends. A failed sample is skipped.
func (c *Controller) Run(ctx context.Context, s Sampler, apply func(capacity int)) {
	last := -1
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		if sig, err := s.Sample(); err == nil {
			if n := c.Step(sig); n != last {
				apply(n)
				last = n
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
