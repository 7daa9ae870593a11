package broker_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/brokertest"
	"github.com/scrapeplatform/platform/shared/contract"
)

// Two listeners (two workers) each hear every notice, also after the broker dropped one's connection
// (it redeclares its queue and binding on reconnect); other messages on the exchange are ignored.
func TestCancelListener(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	c := s.client(t, nil)
	waitFor(t, c.Connected, "client to connect")
	var mu sync.Mutex
	heard := map[string][]string{}
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	var listeners []*broker.CancelListener
	var w1Connects atomic.Int32
	for _, name := range []string{"w1", "w2"} {
		l := broker.NewCancelListener(broker.CancelListenerConfig{URL: s.url, Name: s.topo.TaskQueue + "/" + name, Topology: s.topo,
			Logger: testLogger(t), OnConnect: func() {
				if name == "w1" {
					w1Connects.Add(1)
				}
			}, OnNotice: func(id string) {
				mu.Lock()
				heard[name] = append(heard[name], id)
				mu.Unlock()
			}})
		go func() { _ = l.Run(ctx) }()
		waitFor(t, l.Connected, "listener to connect")
		listeners = append(listeners, l)
	}
	count := func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return len(heard[name])
	}
	notify := func(id string) {
		nctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.NotifyCancel(nctx, id); err != nil {
			t.Fatal(err)
		}
	}
	_, ch := brokertest.Channel(t, s.url)
	if err := ch.PublishWithContext(t.Context(), s.topo.CancelExchange, "", false, false, amqp.Publishing{Type: "something.else", CorrelationId: "x"}); err != nil {
		t.Fatal(err)
	}
	notify("job-1")
	waitFor(t, func() bool { return count("w1") == 1 && count("w2") == 1 }, "both listeners to hear job-1")

	// Counted by OnConnect: a reconnect can be quicker than a poll of Connected would notice the gap.
	before := w1Connects.Load()
	brokertest.CloseConnection(t, s.topo.TaskQueue+"/w1")
	waitFor(t, func() bool { return w1Connects.Load() > before && listeners[0].Connected() }, "w1 to reconnect")
	notify("job-2")
	waitFor(t, func() bool { return count("w1") == 2 && count("w2") == 2 }, "both listeners to hear job-2")
	mu.Lock()
	defer mu.Unlock()
	for name, ids := range heard {
		if len(ids) != 2 || ids[0] != "job-1" || ids[1] != "job-2" {
			t.Errorf("%s heard %v", name, ids)
		}
	}
}

// A lease copy waits in the lease queue for the lease period, then comes back into the task queue, whole
// and marked; the original delivery is acked by Release and the reply still goes out by Reply.
func TestLeaseCopyComesBack(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	brokertest.DeleteQueues(t, s.url, []string{s.topo.LeaseQueue()}, nil)
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	leaser := broker.NewLeaser(broker.LeaserConfig{URL: s.url, Name: s.topo.TaskQueue + "/lease", Topology: s.topo,
		Period: 500 * time.Millisecond, Logger: testLogger(t)})
	go func() { _ = leaser.Run(ctx) }()
	publisher := broker.NewPublisher(broker.PublisherConfig{URL: s.url, Name: s.topo.TaskQueue + "/publish", Logger: testLogger(t)})
	go func() { _ = publisher.Run(ctx) }()
	tasks := make(chan *broker.Task, 4)
	consumer := broker.NewConsumer(broker.ConsumerConfig{URL: s.url, Name: s.topo.TaskQueue + "/consume", Topology: s.topo,
		Prefetch: 4, Logger: testLogger(t), Settler: broker.Settler{Publisher: publisher}})
	go func() { _ = consumer.Run(ctx, func(t *broker.Task) { tasks <- t }) }()
	c := s.client(t, nil)
	waitFor(t, func() bool {
		return leaser.Connected() && consumer.Connected() && c.Connected() && publisher.Connected()
	}, "everything to connect")

	req := &contract.Request{Version: contract.Version, RequestID: "leased-1", ScriptName: "s",
		Budget: contract.NewBudget(time.Now(), 30*time.Second, time.Second, time.Time{})}
	replies := make(chan *contract.Reply, 1)
	go func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		rep, err := c.Call(cctx, req)
		if err != nil {
			t.Error(err)
		}
		replies <- rep
	}()
	next := func() *broker.Task {
		select {
		case task := <-tasks:
			return task
		case <-time.After(30 * time.Second):
			t.Fatal("no task")
		}
		return nil
	}
	orig := next()
	if orig.LeaseCopy() || orig.Invalid != nil {
		t.Fatalf("original task: lease copy %v, invalid %v", orig.LeaseCopy(), orig.Invalid)
	}
	lctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leaser.Lease(lctx, orig, "w1"); err != nil {
		t.Fatal(err)
	}
	if err := orig.Release(); err != nil {
		t.Fatal(err)
	}
	back := next()
	if !back.LeaseCopy() || back.Invalid != nil || back.Request.RequestID != "leased-1" || !back.Request.Deadline.Equal(req.Deadline) || back.CanReply() != orig.CanReply() {
		t.Fatalf("lease copy: marked %v, invalid %v, request %+v", back.LeaseCopy(), back.Invalid, back.Request)
	}
	if err := back.Settle(lctx, broker.Outcome{Action: broker.Ack}); err != nil {
		t.Fatal(err)
	}
	rep := &contract.Reply{Version: contract.Version, RequestID: "leased-1", Status: contract.StatusCompleted, Data: []byte(`{"ok":1}`), WorkerID: "w1"}
	if err := orig.Reply(lctx, rep, nil); err != nil {
		t.Fatal(err)
	}
	if got := <-replies; got == nil || string(got.Data) != `{"ok":1}` {
		t.Fatalf("reply %+v", got)
	}
	// The channel survived the early ack (a second ack of the same delivery would have closed it).
	if !consumer.Connected() {
		t.Fatal("the consumer's channel closed")
	}
}
