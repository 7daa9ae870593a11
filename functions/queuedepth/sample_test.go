package queuedepth

import (
	"math"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

func TestBacklogPerTask(t *testing.T) {
	tests := []struct {
		ready, unacked int64
		running        int32
		want           float64
	}{
		{0, 0, 0, 0},
		{5, 0, 0, 5}, // no task: the whole backlog, so the scale-from-zero alarm sees it
		{0, 8, 2, 4}, // saturated fleet with an empty ready count still has a backlog
		{6, 2, 4, 2},
		{1, 0, 3, 1.0 / 3},
	}
	for _, tt := range tests {
		s := Sample{Ready: tt.ready, Unacked: tt.unacked, RunningTasks: tt.running}
		if got := s.BacklogPerTask(); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("BacklogPerTask(ready=%d, unacked=%d, running=%d) = %v, want %v", tt.ready, tt.unacked, tt.running, got, tt.want)
		}
	}
}

func TestSetNodes(t *testing.T) {
	var s Sample
	s.SetNodes([]NodeStats{
		{Name: "rabbit@a", MemUsed: 200, MemLimit: 1000},
		{Name: "rabbit@b", MemUsed: 600, MemLimit: 1000, DiskAlarm: true},
		{Name: "rabbit@c", MemUsed: 10, MemLimit: 0, MemAlarm: true},
	})
	if !s.NodesKnown || s.MemoryUsedPercent != 60 || s.ResourceAlarms != 2 {
		t.Fatalf("sample = %+v, want 60%% and 2 alarms", s)
	}
}

func TestDatumsPublishOnlyWhatWasMeasured(t *testing.T) {
	names := func(ds []cwtypes.MetricDatum) map[string]bool {
		m := map[string]bool{}
		for _, d := range ds {
			m[aws.ToString(d.MetricName)] = true
			if d.Timestamp == nil || d.Value == nil || len(d.Dimensions) == 0 || aws.ToString(d.Dimensions[0].Name) != "Stage" {
				t.Fatalf("incomplete datum %+v", d)
			}
		}
		return m
	}
	now := time.Now()
	if got := (Sample{Time: now}).Datums("dev", "q"); len(got) != 0 {
		t.Fatalf("an empty sample published %d datapoints", len(got))
	}
	got := names(Sample{Time: now, QueueKnown: true}.Datums("dev", "q"))
	if !got[MetricReadyMessages] || got[MetricBacklogPerTask] || got[MetricRunningTasks] {
		t.Fatalf("queue only: %v", got)
	}
	got = names(Sample{Time: now, QueueKnown: true, TasksKnown: true, DeadLettersKnown: true, NodesKnown: true}.Datums("dev", "q"))
	for _, n := range []string{MetricReadyMessages, MetricUnackedMessages, MetricConsumers, MetricWorkerCapacity, MetricCapacityUtilization,
		MetricDeadLetterMessages, MetricRunningTasks,
		MetricDesiredTasks, MetricBacklogPerTask, MetricBrokerMemoryPercent, MetricBrokerAlarms} {
		if !got[n] {
			t.Errorf("%s missing from a complete sample", n)
		}
	}
	// The webhook dead letters: DeadLetterMessages of their own queue.
	ds := Sample{Time: now, WebhookDeadLettersKnown: true, WebhookDeadLetterQueue: "q.webhooks.dead", WebhookDeadLetters: 3}.Datums("dev", "q")
	if len(ds) != 1 || aws.ToString(ds[0].MetricName) != MetricDeadLetterMessages || aws.ToFloat64(ds[0].Value) != 3 ||
		len(ds[0].Dimensions) != 2 || aws.ToString(ds[0].Dimensions[1].Value) != "q.webhooks.dead" {
		t.Fatalf("webhook dead letters: %+v", ds)
	}
}

func TestCapacityUtilization(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		ready, unacked, capacity int64
		want                     float64
	}{
		{0, 0, 512, 0},
		{100, 256, 512, 356.0 / 512},
		{10, 0, 0, 10}, // no worker: the whole backlog
	} {
		s := Sample{QueueKnown: true, Ready: tt.ready, Unacked: tt.unacked, Capacity: tt.capacity}
		if got := s.CapacityUtilization(); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("CapacityUtilization(%d, %d, capacity %d) = %v, want %v", tt.ready, tt.unacked, tt.capacity, got, tt.want)
		}
	}
}

func TestDecodeQueueSumsPrefetch(t *testing.T) {
	t.Parallel()
	q, err := DecodeQueue([]byte(`{"name":"q","messages_ready":1,"messages_unacknowledged":3,"messages":4,"consumers":2,
		"consumer_details":[{"prefetch_count":256,"consumer_tag":"w1"},{"prefetch_count":48,"consumer_tag":"w2#3"}]}`))
	if err != nil || q.Capacity != 304 || q.Consumers != 2 {
		t.Fatalf("DecodeQueue = %+v, %v; want capacity 304", q, err)
	}
	if _, err := DecodeQueue([]byte(`{"consumer_details":[{"prefetch_count":-1}]}`)); err == nil {
		t.Error("a negative prefetch count was accepted")
	}
}
