package runner

import "time"

// Metrics records the warm runner pool's work. The worker's edge implements it with Prometheus (the
// telemetry package); Config.Metrics nil records nothing. Calls are made with the pool's lock held, so they
// must be quick and must not call back into the Runner.
type Metrics interface {
	// WarmStarted counts a warm runner started, on a request's path or in the background, and how long its
	// start took: from spawning it (its containment included) to its ready frame (the interpreter started
	// and the script imported). Starts bound how fast a worker grows its runners when calls arrive.
	WarmStarted(took time.Duration)
	// WarmReused counts a request served by an already-running warm runner.
	WarmReused()
	// WarmRecycled counts a warm runner stopped: after a failure or timeout, MaxRequests, idleness, a new
	// version of its script, and for a shared runner a blocked event loop, a forged frame or its RSS bound
	// (not at Shutdown).
	WarmRecycled()
	// WarmIdle reports how many one-call-at-a-time warm runners wait for a request, whenever that changes
	// (shared runners are not idle-pooled).
	WarmIdle(n int)
	// MemoryBudget reports the memory budget of blocking runners (total bytes, 0: no bound), the bytes its
	// runners and templates hold, and the runs waiting for memory, at start and whenever they change.
	MemoryBudget(total, held int64, waiting int)
}

// nopMetrics records nothing.
type nopMetrics struct{}

func (nopMetrics) WarmStarted(time.Duration)      {}
func (nopMetrics) WarmReused()                    {}
func (nopMetrics) WarmRecycled()                  {}
func (nopMetrics) WarmIdle(n int)                 {}
func (nopMetrics) MemoryBudget(int64, int64, int) {}
