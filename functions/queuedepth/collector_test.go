package queuedepth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/brokertest"
	"github.com/scrapeplatform/platform/shared/testlog"
)

// fakeCloudWatch records PutMetricData calls.
type fakeCloudWatch struct {
	mu    sync.Mutex
	calls []*cloudwatch.PutMetricDataInput
	err   error
}

func (f *fakeCloudWatch) PutMetricData(_ context.Context, in *cloudwatch.PutMetricDataInput, _ ...func(*cloudwatch.Options)) (*cloudwatch.PutMetricDataOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, in)
	return &cloudwatch.PutMetricDataOutput{}, f.err
}

// metrics returns the last call's datapoints by "Name{dim=value,...}".
func (f *fakeCloudWatch) metrics(t *testing.T) (string, map[string]float64) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		t.Fatal("nothing published")
	}
	in := f.calls[len(f.calls)-1]
	out := map[string]float64{}
	for _, d := range in.MetricData {
		var dims []string
		for _, dim := range d.Dimensions {
			dims = append(dims, aws.ToString(dim.Name)+"="+aws.ToString(dim.Value))
		}
		out[aws.ToString(d.MetricName)+"{"+strings.Join(dims, ",")+"}"] = aws.ToFloat64(d.Value)
	}
	return aws.ToString(in.Namespace), out
}

// fakeECS answers DescribeServices for one service.
type fakeECS struct {
	cluster, service string
	running, desired int32
	err              error
}

func (f *fakeECS) DescribeServices(_ context.Context, in *ecs.DescribeServicesInput, _ ...func(*ecs.Options)) (*ecs.DescribeServicesOutput, error) {
	if f.err != nil {
		return nil, f.err
	}
	if aws.ToString(in.Cluster) != f.cluster || len(in.Services) != 1 || in.Services[0] != f.service {
		return &ecs.DescribeServicesOutput{Failures: []ecstypes.Failure{{Reason: aws.String("MISSING")}}}, nil
	}
	return &ecs.DescribeServicesOutput{Services: []ecstypes.Service{{RunningCount: f.running, DesiredCount: f.desired}}}, nil
}

func testLogger(t *testing.T) *slog.Logger { return testlog.New(t, slog.LevelInfo) }

func newCollector(t *testing.T, base string, fx fixture, ecsClient ServiceDescriber, cw MetricPutter) *Collector {
	cfg := Config{ManagementURL: base, Username: "guest", Password: "guest", VHost: "/", TaskQueue: fx.topo.TaskQueue,
		DeadLetterQueue: fx.topo.DeadLetterQueue, Cluster: "scraping-dev", Service: "worker", Namespace: "ScrapingPlatformTest",
		Stage: "dev", Timeout: 5 * time.Second}
	return &Collector{
		Config: cfg,
		Management: func(context.Context) (*Management, error) {
			return NewManagement(cfg.ManagementURL, cfg.Username, cfg.Password, cfg.Timeout)
		},
		ECS:        ecsClient,
		CloudWatch: cw,
		Log:        testLogger(t),
		Now:        func() time.Time { return time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC) },
	}
}

func TestCollectorPublishesBacklogPerTask(t *testing.T) {
	t.Parallel()
	base := managementURL(t)
	fx := newFixture(t, 6, 2, 1)
	cw := &fakeCloudWatch{}
	c := newCollector(t, base, fx, &fakeECS{cluster: "scraping-dev", service: "worker", running: 4, desired: 5}, cw)
	q := "Queue=" + fx.topo.TaskQueue
	eventually(t, func() error {
		if _, err := c.Run(context.Background()); err != nil {
			return err
		}
		ns, got := cw.metrics(t)
		want := map[string]float64{
			"ReadyMessages{Stage=dev," + q + "}":      6,
			"UnackedMessages{Stage=dev," + q + "}":    2,
			"Consumers{Stage=dev," + q + "}":          1,
			"DeadLetterMessages{Stage=dev," + q + "}": 1,
			"RunningTasks{Stage=dev," + q + "}":       4,
			"DesiredTasks{Stage=dev," + q + "}":       5,
			"BacklogPerTask{Stage=dev," + q + "}":     2, // (6 + 2) / 4
			// The fixture's consumer holds 2 with prefetch 2: the workers' capacity is 2.
			"WorkerCapacity{Stage=dev," + q + "}":      2,
			"CapacityUtilization{Stage=dev," + q + "}": 4, // (6 + 2) / 2
		}
		if ns != "ScrapingPlatformTest" {
			return fmt.Errorf("namespace %q", ns)
		}
		for k, v := range want {
			if got[k] != v {
				return fmt.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
			}
		}
		if _, ok := got["BrokerMemoryUsedPercent{Stage=dev}"]; !ok {
			return fmt.Errorf("no broker memory metric in %v", got)
		}
		if got["BrokerMemoryUsedPercent{Stage=dev}"] <= 0 || got["BrokerMemoryUsedPercent{Stage=dev}"] >= 100 {
			return fmt.Errorf("broker memory %v%% is implausible", got["BrokerMemoryUsedPercent{Stage=dev}"])
		}
		return nil
	})
}

func TestCollectorPublishesWhatItCouldMeasure(t *testing.T) {
	t.Parallel()
	base := managementURL(t)
	fx := newFixture(t, 1, 0, 0)

	t.Run("ECS fails: queue metrics still published, no backlog per task", func(t *testing.T) {
		cw := &fakeCloudWatch{}
		c := newCollector(t, base, fx, &fakeECS{err: errors.New("AccessDeniedException")}, cw)
		_, err := c.Run(context.Background())
		if err == nil || !strings.Contains(err.Error(), "AccessDeniedException") {
			t.Fatalf("error = %v, want the ECS failure", err)
		}
		_, got := cw.metrics(t)
		if _, ok := got["ReadyMessages{Stage=dev,Queue="+fx.topo.TaskQueue+"}"]; !ok {
			t.Fatalf("queue metrics missing: %v", got)
		}
		for k := range got {
			if strings.HasPrefix(k, "BacklogPerTask") || strings.HasPrefix(k, "RunningTasks") {
				t.Fatalf("%s published without task counts", k)
			}
		}
	})
	t.Run("broker unreachable: task counts still published", func(t *testing.T) {
		cw := &fakeCloudWatch{}
		c := newCollector(t, "http://127.0.0.1:1", fx, &fakeECS{cluster: "scraping-dev", service: "worker", running: 2, desired: 2}, cw)
		_, err := c.Run(context.Background())
		if err == nil {
			t.Fatal("no error with the broker unreachable")
		}
		_, got := cw.metrics(t)
		if len(got) != 2 || got["RunningTasks{Stage=dev,Queue="+fx.topo.TaskQueue+"}"] != 2 {
			t.Fatalf("published %v, want only the task counts", got)
		}
	})
	t.Run("CloudWatch fails: the run fails", func(t *testing.T) {
		cw := &fakeCloudWatch{err: errors.New("throttled")}
		c := newCollector(t, base, fx, &fakeECS{cluster: "scraping-dev", service: "worker", running: 1, desired: 1}, cw)
		if _, err := c.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "throttled") {
			t.Fatalf("error = %v, want the PutMetricData failure", err)
		}
	})
	t.Run("queue not declared yet: reported empty", func(t *testing.T) {
		cw := &fakeCloudWatch{}
		missing := fixture{topo: fx.topo}
		missing.topo.TaskQueue += "-not-declared"
		missing.topo.DeadLetterQueue += "-not-declared"
		c := newCollector(t, base, missing, &fakeECS{cluster: "scraping-dev", service: "worker", running: 0, desired: 0}, cw)
		s, err := c.Run(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !s.QueueKnown || s.Ready != 0 || s.BacklogPerTask() != 0 {
			t.Fatalf("sample = %+v", s)
		}
	})
}

// TestCollectorKeepsTheQueueBounded: with a max length set, a run puts the bound policy on the real broker
// (publishes past the bound are then nacked), puts it back after someone changed it, and otherwise leaves
// it alone.
func TestCollectorKeepsTheQueueBounded(t *testing.T) {
	t.Parallel()
	base := managementURL(t)
	fx := newFixture(t, 0, 0, 0)
	c := newCollector(t, base, fx, &fakeECS{cluster: "scraping-dev", service: "worker", running: 1, desired: 1}, &fakeCloudWatch{})
	c.Config.MaxLength = 3
	c.Config.PolicyName = fx.topo.TaskQueue + "-bound"
	c.Config.PolicyApplyTo, c.Config.PolicyPriority = "queues", 10
	m, err := NewManagement(base, "guest", "guest", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t.Cleanup(func() {
		_ = m.api.Do(ctx, http.MethodDelete, "/api/policies/%2F/"+url.PathEscape(c.Config.PolicyName), nil, nil)
	})

	if _, err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// The broker now refuses publishes past 3 messages. A quorum queue applies a new policy a moment
	// later, so publish one message at a time until one is refused.
	_, ch := brokertest.Channel(t, brokertest.URL(t))
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	accepted := 0
	eventually(t, func() error {
		if err := ch.PublishWithContext(ctx, "", fx.topo.TaskQueue, true, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if (<-confirms).Ack {
			accepted++
			return fmt.Errorf("publish %d accepted", accepted)
		}
		return nil
	})
	if accepted < 3 {
		t.Fatalf("only %d publishes accepted before the first refusal, want at least the bound (3)", accepted)
	}

	// An operator changes the bound and the priority by hand, and merges a key of their own into the
	// policy: the next run restores the bound and the priority and keeps their key; the one after writes
	// nothing.
	hand := QueueBoundPolicy(fx.topo.TaskQueue, 1000, "queues", 0)
	hand.Definition["delivery-limit"] = 5
	if changed, err := m.EnsurePolicy(ctx, "/", c.Config.PolicyName, hand); err != nil || !changed {
		t.Fatalf("changing the policy by hand: changed=%v err=%v", changed, err)
	}
	if _, err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	want := QueueBoundPolicy(fx.topo.TaskQueue, 3, "queues", 10)
	if changed, err := m.EnsurePolicy(ctx, "/", c.Config.PolicyName, want); err != nil || changed {
		t.Fatalf("after the run the policy should already be the bound: changed=%v err=%v", changed, err)
	}
	body, err := m.get(ctx, "/api/policies/%2F/"+url.PathEscape(c.Config.PolicyName))
	if err != nil {
		t.Fatal(err)
	}
	var got Policy
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Priority != 10 || got.Definition["max-length"] != float64(3) || got.Definition["overflow"] != "reject-publish" ||
		got.Definition["delivery-limit"] != float64(5) {
		t.Fatalf("policy on the broker: %s; want the bound (3, reject-publish, priority 10) with the operator's delivery-limit kept", body)
	}

	// A policy the broker refuses (an invalid pattern) is an error with the broker's reason.
	if _, err := m.EnsurePolicy(ctx, "/", fx.topo.TaskQueue+"-bad", Policy{Pattern: "(", ApplyTo: "queues", Definition: map[string]any{"max-length": 3}}); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("invalid pattern: error = %v, want the broker's 400", err)
	}
}
