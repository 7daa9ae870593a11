package queuedepth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
)

// MetricPutter is the CloudWatch call the collector makes; *cloudwatch.Client satisfies it.
type MetricPutter interface {
	PutMetricData(ctx context.Context, in *cloudwatch.PutMetricDataInput, opts ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error)
}

// ServiceDescriber is the ECS call the collector makes; *ecs.Client satisfies it.
type ServiceDescriber interface {
	DescribeServices(ctx context.Context, in *ecs.DescribeServicesInput, opts ...func(*ecs.Options)) (*ecs.DescribeServicesOutput, error)
}

var (
	_ MetricPutter     = (*cloudwatch.Client)(nil)
	_ ServiceDescriber = (*ecs.Client)(nil)
)

// Collector measures the queue, the broker and the worker service and publishes the result.
type Collector struct {
	Config Config
	// Management returns a management API client; it is called once per run so that rotated broker
	// credentials are picked up without a redeploy.
	Management func(ctx context.Context) (*Management, error)
	// ECS may be nil when Config.Cluster is empty.
	ECS        ServiceDescriber
	CloudWatch MetricPutter
	Log        *slog.Logger
	Now        func() time.Time
}

// Run takes one sample and publishes it. What could be measured is published even when another part
// failed; the error joins every failure.
func (c *Collector) Run(ctx context.Context) (Sample, error) {
	s := Sample{Time: c.Now().UTC()}
	var errs []error

	if mgmt, err := c.Management(ctx); err != nil {
		errs = append(errs, err)
	} else {
		errs = append(errs, c.measureBroker(ctx, mgmt, &s)...)
	}
	if c.Config.Cluster != "" {
		running, desired, err := TaskCounts(ctx, c.ECS, c.Config.Cluster, c.Config.Service)
		if err != nil {
			errs = append(errs, err)
		} else {
			s.TasksKnown, s.RunningTasks, s.DesiredTasks = true, running, desired
		}
	}

	datums := s.Datums(c.Config.Stage, c.Config.TaskQueue)
	if len(datums) > 0 {
		_, err := c.CloudWatch.PutMetricData(ctx, &cloudwatch.PutMetricDataInput{Namespace: aws.String(c.Config.Namespace), MetricData: datums})
		if err != nil {
			errs = append(errs, fmt.Errorf("put metric data: %w", err))
		}
	}
	err := errors.Join(errs...)
	attrs := []any{"queue", c.Config.TaskQueue, "ready", s.Ready, "unacked", s.Unacked, "consumers", s.Consumers,
		"dead_letters", s.DeadLetters, "running_tasks", s.RunningTasks, "desired_tasks", s.DesiredTasks,
		"backlog_per_task", s.BacklogPerTask(), "broker_memory_percent", s.MemoryUsedPercent, "metrics", len(datums)}
	if err != nil {
		c.Log.Error("queue depth sample incomplete", append(attrs, "error", err)...)
	} else {
		c.Log.Info("queue depth sample", attrs...)
	}
	return s, err
}

// measureBroker fills the queue, dead-letter and node figures of s.
func (c *Collector) measureBroker(ctx context.Context, mgmt *Management, s *Sample) []error {
	var errs []error
	q, err := mgmt.Queue(ctx, c.Config.VHost, c.Config.TaskQueue)
	switch {
	case errors.Is(err, ErrNotFound):
		// Not declared yet: nothing was ever published, so nothing waits.
		c.Log.Warn("task queue does not exist yet; reporting it empty", "queue", c.Config.TaskQueue)
		s.QueueKnown = true
	case err != nil:
		errs = append(errs, err)
	default:
		s.QueueKnown, s.Ready, s.Unacked, s.Consumers, s.Capacity = true, q.Ready, q.Unacknowledged, q.Consumers, q.Capacity
	}
	dlq, err := mgmt.Queue(ctx, c.Config.VHost, c.Config.DeadLetterQueue)
	switch {
	case errors.Is(err, ErrNotFound):
		s.DeadLettersKnown = true
	case err != nil:
		errs = append(errs, err)
	default:
		s.DeadLettersKnown, s.DeadLetters = true, dlq.Messages
	}
	if name := c.Config.WebhookDeadLetterQueue; name != "" {
		wq, err := mgmt.Queue(ctx, c.Config.VHost, name)
		switch {
		case errors.Is(err, ErrNotFound):
			s.WebhookDeadLetterQueue, s.WebhookDeadLettersKnown = name, true
		case err != nil:
			errs = append(errs, err)
		default:
			s.WebhookDeadLetterQueue, s.WebhookDeadLettersKnown, s.WebhookDeadLetters = name, true, wq.Messages
		}
	}
	nodes, err := mgmt.Nodes(ctx)
	if err != nil {
		errs = append(errs, err)
	} else {
		s.SetNodes(nodes)
	}
	if c.Config.MaxLength > 0 {
		want := QueueBoundPolicy(c.Config.TaskQueue, c.Config.MaxLength, c.Config.PolicyApplyTo, c.Config.PolicyPriority)
		changed, err := mgmt.EnsurePolicy(ctx, c.Config.VHost, c.Config.PolicyName, want)
		switch {
		case err != nil:
			errs = append(errs, err)
		case changed:
			// A first run, or someone changed or removed the policy by hand: say so, once.
			c.Log.Warn("task queue bound (re)applied", "policy", c.Config.PolicyName, "queue", c.Config.TaskQueue,
				"max_length", c.Config.MaxLength, "overflow", "reject-publish")
		}
	}
	return errs
}

// TaskCounts returns the running and desired task counts of an ECS service.
func TaskCounts(ctx context.Context, d ServiceDescriber, cluster, service string) (running, desired int32, err error) {
	out, err := d.DescribeServices(ctx, &ecs.DescribeServicesInput{Cluster: aws.String(cluster), Services: []string{service}})
	if err != nil {
		return 0, 0, fmt.Errorf("describe ECS service %s: %w", service, err)
	}
	if len(out.Services) != 1 {
		reason := "not returned"
		if len(out.Failures) > 0 {
			reason = aws.ToString(out.Failures[0].Reason)
		}
		return 0, 0, fmt.Errorf("describe ECS service %s: %s", service, reason)
	}
	svc := out.Services[0]
	return svc.RunningCount, svc.DesiredCount, nil
}
