package runner

import (
	"sync/atomic"
	"time"
)

// lagMeter keeps the largest event-loop lag the shared runners reported since it was last taken.
type lagMeter struct{ max atomic.Int64 }

func (m *lagMeter) observe(lag time.Duration) {
	for {
		cur := m.max.Load()
		if int64(lag) <= cur || m.max.CompareAndSwap(cur, int64(lag)) {
			return
		}
	}
}

// TakeLoopLag returns the largest event-loop lag any shared async runner reported in its heartbeats since
// the previous call (0 without shared runners), and starts a new period: the admission controller's signal
// that the runners' loops are falling behind before they are blocked outright (WARM_LOOP_LAG_LIMIT).
func (r *Runner) TakeLoopLag() time.Duration { return time.Duration(r.loopLag.max.Swap(0)) }
