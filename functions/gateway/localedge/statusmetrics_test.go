package localedge

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/scrapeplatform/platform/shared/broker"
)

// fakeBroker reports a queue state while connected. Unit tests only.
type fakeBroker struct {
	connected bool
	state     broker.QueueState
}

func (f *fakeBroker) Connected() bool { return f.connected }
func (f *fakeBroker) Inspect(context.Context, string) (broker.QueueState, error) {
	if !f.connected {
		return broker.QueueState{}, broker.ErrUnavailable
	}
	return f.state, nil
}

func TestStatusCollector(t *testing.T) {
	t.Parallel()
	b := &fakeBroker{connected: true, state: broker.QueueState{Messages: 7, Consumers: 3}}
	c := NewStatusCollector(b, "tasks", time.Second, nil)

	// Connected: every gauge, with the broker's numbers (the fake answers both queues alike).
	want := `
# HELP scraping_active_workers Consumers of the task queue: the workers consuming right now.
# TYPE scraping_active_workers gauge
scraping_active_workers 3
# HELP scraping_dead_letter_queue_length Messages in the dead-letter queue (invalid, expired or poison tasks).
# TYPE scraping_dead_letter_queue_length gauge
scraping_dead_letter_queue_length 7
# HELP scraping_queue_length Ready messages in the task queue (tasks no worker has taken yet), as the broker reports them.
# TYPE scraping_queue_length gauge
scraping_queue_length 7
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "scraping_queue_length", "scraping_active_workers", "scraping_dead_letter_queue_length"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(c, "system_memory_usage_percent", "system_cpu_usage_percent"); n != 2 {
		t.Fatalf("system gauges: got %d series, want 2", n)
	}

	// Disconnected: no queue gauges at all (never a 0 that would read as "no workers"), system gauges still.
	b.connected = false
	if n := testutil.CollectAndCount(c, "scraping_queue_length", "scraping_active_workers", "scraping_dead_letter_queue_length"); n != 0 {
		t.Fatalf("queue gauges while disconnected: got %d series, want none", n)
	}
	if n := testutil.CollectAndCount(c, "system_memory_usage_percent", "system_cpu_usage_percent"); n != 2 {
		t.Fatalf("system gauges while disconnected: got %d series, want 2", n)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

func TestMetricsKnownLabelsStartAtZero(t *testing.T) {
	t.Parallel()
	m := NewMetrics(prometheus.NewRegistry())
	if n := testutil.CollectAndCount(m.ScrapeOutcomes); n != 6 {
		t.Fatalf("scrape outcomes: %d series, want 6 (every outcome at 0)", n)
	}
	if n := testutil.CollectAndCount(m.RepliesDropped); n != 2 {
		t.Fatalf("replies dropped: %d series, want 2 (late, unknown)", n)
	}
	if n := testutil.CollectAndCount(m.JobsAccepted); n != 2 {
		t.Fatalf("jobs accepted: %d series, want 2 (sync, async)", n)
	}
	m.JobAccepted("async")
	if v := testutil.ToFloat64(m.JobsAccepted.WithLabelValues("async")); v != 1 {
		t.Fatalf("scraping_gateway_jobs_accepted_total{mode=async} = %v", v)
	}
}
