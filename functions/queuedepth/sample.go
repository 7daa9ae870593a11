package queuedepth

import (
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	cwtypes "github.com/aws/aws-sdk-go-v2/service/cloudwatch/types"
)

// Metric names, as the infra stack's scaling policies, alarms and dashboard use them.
const (
	MetricReadyMessages       = "ReadyMessages"
	MetricUnackedMessages     = "UnackedMessages"
	MetricConsumers           = "Consumers"
	MetricDeadLetterMessages  = "DeadLetterMessages"
	MetricRunningTasks        = "RunningTasks"
	MetricDesiredTasks        = "DesiredTasks"
	MetricBacklogPerTask      = "BacklogPerTask"
	MetricWorkerCapacity      = "WorkerCapacity"
	MetricCapacityUtilization = "CapacityUtilization"
	MetricBrokerMemoryPercent = "BrokerMemoryUsedPercent"
	MetricBrokerAlarms        = "BrokerResourceAlarms"
)

// Sample is one measurement. The *Known fields say which parts were measured; only those are published.
type Sample struct {
	Time time.Time

	QueueKnown bool
	Ready      int64
	Unacked    int64
	Consumers  int64
	// Capacity is the workers' admission capacity: the sum of their consumers' prefetch counts.
	Capacity int64

	DeadLettersKnown bool
	DeadLetters      int64

	// WebhookDeadLetters is the depth of the webhook dead-letter queue WebhookDeadLetterQueue.
	WebhookDeadLettersKnown bool
	WebhookDeadLetterQueue  string
	WebhookDeadLetters      int64

	TasksKnown   bool
	RunningTasks int32
	DesiredTasks int32

	NodesKnown bool
	// MemoryUsedPercent is the highest mem_used/mem_limit of any node, in percent.
	MemoryUsedPercent float64
	// ResourceAlarms counts nodes with a memory or disk alarm (publishers are blocked while any is set).
	ResourceAlarms int
}

// BacklogPerTask is (ready + unacknowledged) / max(1, running tasks): the work in the system per task.
// With no task running it equals the whole backlog, which is what the scale-from-zero step policy needs.
func (s Sample) BacklogPerTask() float64 {
	return float64(s.Ready+s.Unacked) / float64(max(1, s.RunningTasks))
}

// CapacityUtilization is (ready + unacknowledged) / max(1, the workers' capacity): above 1 tasks wait that no
// worker takes in now. The workers' capacity follows their measured load (admission control), so scaling
// on it follows what the running tasks can really take, not a fixed number per task.
func (s Sample) CapacityUtilization() float64 {
	return float64(s.Ready+s.Unacked) / float64(max(1, s.Capacity))
}

// SetNodes derives the broker figures from the nodes' stats.
func (s *Sample) SetNodes(nodes []NodeStats) {
	s.NodesKnown, s.MemoryUsedPercent, s.ResourceAlarms = true, 0, 0
	for _, n := range nodes {
		if n.MemLimit > 0 {
			s.MemoryUsedPercent = max(s.MemoryUsedPercent, 100*float64(n.MemUsed)/float64(n.MemLimit))
		}
		if n.MemAlarm || n.DiskAlarm {
			s.ResourceAlarms++
		}
	}
}

// Datums returns the CloudWatch datapoints of s: queue and task figures with the dimensions Stage and
// Queue, broker figures with Stage alone. BacklogPerTask needs both the queue and the task counts.
func (s Sample) Datums(stage, queue string) []cwtypes.MetricDatum {
	queueDims := []cwtypes.Dimension{{Name: aws.String("Stage"), Value: aws.String(stage)}, {Name: aws.String("Queue"), Value: aws.String(queue)}}
	stageDims := []cwtypes.Dimension{{Name: aws.String("Stage"), Value: aws.String(stage)}}
	var out []cwtypes.MetricDatum
	add := func(name string, v float64, unit cwtypes.StandardUnit, dims []cwtypes.Dimension) {
		out = append(out, cwtypes.MetricDatum{MetricName: aws.String(name), Value: aws.Float64(v), Unit: unit, Timestamp: aws.Time(s.Time), Dimensions: dims})
	}
	if s.QueueKnown {
		add(MetricReadyMessages, float64(s.Ready), cwtypes.StandardUnitCount, queueDims)
		add(MetricUnackedMessages, float64(s.Unacked), cwtypes.StandardUnitCount, queueDims)
		add(MetricConsumers, float64(s.Consumers), cwtypes.StandardUnitCount, queueDims)
		add(MetricWorkerCapacity, float64(s.Capacity), cwtypes.StandardUnitCount, queueDims)
		add(MetricCapacityUtilization, s.CapacityUtilization(), cwtypes.StandardUnitNone, queueDims)
	}
	if s.DeadLettersKnown {
		add(MetricDeadLetterMessages, float64(s.DeadLetters), cwtypes.StandardUnitCount, queueDims)
	}
	if s.WebhookDeadLettersKnown && s.WebhookDeadLetterQueue != "" {
		add(MetricDeadLetterMessages, float64(s.WebhookDeadLetters), cwtypes.StandardUnitCount,
			[]cwtypes.Dimension{{Name: aws.String("Stage"), Value: aws.String(stage)}, {Name: aws.String("Queue"), Value: aws.String(s.WebhookDeadLetterQueue)}})
	}
	if s.TasksKnown {
		add(MetricRunningTasks, float64(s.RunningTasks), cwtypes.StandardUnitCount, queueDims)
		add(MetricDesiredTasks, float64(s.DesiredTasks), cwtypes.StandardUnitCount, queueDims)
	}
	if s.QueueKnown && s.TasksKnown {
		add(MetricBacklogPerTask, s.BacklogPerTask(), cwtypes.StandardUnitNone, queueDims)
	}
	if s.NodesKnown {
		add(MetricBrokerMemoryPercent, s.MemoryUsedPercent, cwtypes.StandardUnitPercent, stageDims)
		add(MetricBrokerAlarms, float64(s.ResourceAlarms), cwtypes.StandardUnitCount, stageDims)
	}
	return out
}
