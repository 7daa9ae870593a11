package broker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/contract"
)

// settled records how a delivery was settled.
type settled struct {
	mu     sync.Mutex
	events []string
}

func (s *settled) add(e string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	return nil
}
func (s *settled) Ack(uint64, bool) error { return s.add("ack") }
func (s *settled) Nack(_ uint64, _ bool, requeue bool) error {
	if requeue {
		return s.add("requeue")
	}
	return s.add("reject")
}
func (s *settled) Reject(_ uint64, requeue bool) error { return s.Nack(0, false, requeue) }

// failingPublisher fails every publish and counts them.
type failingPublisher struct {
	mu       sync.Mutex
	attempts int
}

func (p *failingPublisher) Publish(context.Context, string, amqp.Publishing) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attempts++
	return errors.New("the broker refuses new messages for now")
}

func taskDelivery(t *testing.T, acks amqp.Acknowledger, deadline time.Time) amqp.Delivery {
	t.Helper()
	req := contract.Request{Version: contract.Version, RequestID: "r", ScriptName: "s", Budget: contract.Budget{Timeout: 1, Deadline: deadline}}
	p, err := req.Publishing(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return amqp.Delivery{Acknowledger: acks, Body: p.Body, CorrelationId: p.CorrelationId, Type: p.Type, ReplyTo: "amq.rabbitmq.reply-to.x"}
}

// A shutdown (ctx cancelled) interrupts the reply's retries at once, long before the caller's deadline; the
// task is still acked and the failure reported once.
func TestSettleReplyRetriesStopWithContext(t *testing.T) {
	t.Parallel()
	acks := &settled{}
	pub := &failingPublisher{}
	failures := 0
	task := broker.NewTask(taskDelivery(t, acks, time.Now().Add(time.Hour)), broker.Settler{Publisher: pub, OnReplyFailure: func(error) { failures++ }})
	if task.Invalid != nil {
		t.Fatal(task.Invalid)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			pub.mu.Lock()
			n := pub.attempts
			pub.mu.Unlock()
			if n >= 2 {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	rep := &contract.Reply{Version: contract.Version, RequestID: "r", Status: contract.StatusCompleted}
	err := task.Settle(ctx, broker.Outcome{Reply: rep, Action: broker.Ack})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Settle = %v, want the retries stopped by the context", err)
	}
	if len(acks.events) != 1 || acks.events[0] != "ack" || failures != 1 {
		t.Fatalf("settled %v with %d failures reported; want one ack, one failure", acks.events, failures)
	}
}

func TestSettleActions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		action broker.Action
		want   string
	}{{broker.Ack, "ack"}, {broker.Requeue, "requeue"}, {broker.DeadLetter, "reject"}} {
		acks := &settled{}
		// Without a dead-letter queue a dead letter is rejected: the broker dead-letters it.
		task := broker.NewTask(taskDelivery(t, acks, time.Now().Add(time.Minute)), broker.Settler{})
		if err := task.Settle(context.Background(), broker.Outcome{Action: tc.action, Reason: "test"}); err != nil {
			t.Fatal(err)
		}
		if len(acks.events) != 1 || acks.events[0] != tc.want {
			t.Errorf("%s: settled %v, want %s", tc.action, acks.events, tc.want)
		}
	}
}
