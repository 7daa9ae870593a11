package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/brokertest"
	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/testlog"
)

type setup struct {
	url   string
	topo  broker.Topology
	drops atomic.Int64
}

func newSetup(t *testing.T) *setup {
	t.Helper()
	url := brokertest.URL(t)
	topo := broker.NewTopology(brokertest.Name("test-tasks"))
	brokertest.DeleteQueues(t, url, []string{topo.TaskQueue, topo.DeadLetterQueue}, []string{topo.DeadLetterExchange, topo.CancelExchange})
	return &setup{url: url, topo: topo}
}

func testLogger(t *testing.T) *slog.Logger { return testlog.New(t, slog.LevelDebug) }

func (s *setup) client(t *testing.T, mod func(*broker.RPCConfig)) *broker.RPCClient {
	t.Helper()
	cfg := broker.RPCConfig{
		URL: s.url, Name: "test-rpc", Topology: s.topo, Logger: testLogger(t),
		OnDrop: func(string) { s.drops.Add(1) },
	}
	if mod != nil {
		mod(&cfg)
	}
	c := broker.NewRPCClient(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// responder consumes the task queue with a plain channel and answers with reply(d).
func (s *setup) responder(t *testing.T, reply func(d amqp.Delivery) (amqp.Publishing, bool)) {
	t.Helper()
	_, ch := brokertest.Channel(t, s.url)
	if err := s.topo.Declare(ch); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(s.topo.TaskQueue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for d := range ds {
			if p, ok := reply(d); ok {
				_ = ch.Publish("", d.ReplyTo, false, false, p)
			}
			_ = d.Ack(false)
		}
	}()
}

// echo answers a request with a completed reply whose data is the request's parameters.
func echo(d amqp.Delivery) (amqp.Publishing, bool) {
	req, err := contract.ParseRequest(d)
	if err != nil {
		return amqp.Publishing{}, false
	}
	rep := contract.Reply{Version: contract.Version, RequestID: req.RequestID, Status: contract.StatusCompleted, Data: req.Parameters}
	p, err := rep.Publishing(time.Now())
	return p, err == nil
}

// request returns a request with id whose parameters name the id.
func request(id string, deadline time.Time) *contract.Request {
	return &contract.Request{Version: contract.Version, RequestID: id, ScriptName: "echo",
		Parameters: json.RawMessage(fmt.Sprintf(`{"id":%q}`, id)), Budget: contract.Budget{Timeout: 1, Deadline: deadline}}
}

func TestTopologyDeclaresQuorumQueueWithDeadLettering(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	_, ch := brokertest.Channel(t, s.url)
	if err := s.topo.Declare(ch); err != nil {
		t.Fatal(err)
	}
	// Redeclaring with the same arguments is fine; with different ones the broker refuses, which proves the
	// queue really carries the quorum type and delivery limit.
	if err := s.topo.Declare(ch); err != nil {
		t.Fatalf("redeclare: %v", err)
	}
	_, err := ch.QueueDeclare(s.topo.TaskQueue, true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeClassic})
	var aerr *amqp.Error
	if !errors.As(err, &aerr) || aerr.Code != amqp.PreconditionFailed {
		t.Fatalf("declaring the task queue as classic should fail with PRECONDITION_FAILED, got %v", err)
	}
}

func TestPoisonMessageEndsInDeadLetterQueue(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	_, ch := brokertest.Channel(t, s.url)
	if err := s.topo.Declare(ch); err != nil {
		t.Fatal(err)
	}
	if err := ch.Publish("", s.topo.TaskQueue, false, false, amqp.Publishing{Body: []byte("poison"), DeliveryMode: amqp.Persistent}); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(s.topo.TaskQueue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Requeue it every time, as a worker that crashes on it would; after DeliveryLimit+1 deliveries the
	// broker must dead-letter it instead of looping forever. Keep nacking until the dead-letter queue holds
	// it: a pause in the redeliveries says nothing about where the message went.
	deliveries := 0
	timeout := time.After(20 * time.Second)
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	var dead amqp.Delivery
loop:
	for {
		select {
		case d := <-ds:
			deliveries++
			_ = d.Nack(false, true)
		case <-poll.C:
			d, ok, err := ch.Get(s.topo.DeadLetterQueue, true)
			if err != nil {
				t.Fatalf("get from %s: %v", s.topo.DeadLetterQueue, err)
			}
			if ok {
				dead = d
				break loop
			}
		case <-timeout:
			t.Fatalf("poison message not in %s after 20 s (%d deliveries so far)", s.topo.DeadLetterQueue, deliveries)
		}
	}
	// Every delivery was nacked by this loop before the broker could dead-letter the message, so the count
	// is complete.
	if deliveries > s.topo.DeliveryLimit+1 {
		t.Fatalf("delivered %d times; limit is %d", deliveries, s.topo.DeliveryLimit)
	}
	if string(dead.Body) != "poison" {
		t.Fatalf("dead letter body %q", dead.Body)
	}
}

func TestRPCRoundTrip(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	s.responder(t, echo)
	c := s.client(t, nil)
	waitFor(t, c.Connected, "client to connect") // the calls below measure nothing about dialling

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("req-%d", i)
			req := request(id, time.Now().Add(5*time.Second))
			rep, err := c.Call(ctx, req)
			if err != nil {
				errs <- fmt.Errorf("%s: %w", id, err)
				return
			}
			if rep.RequestID != id || string(rep.Data) != string(req.Parameters) {
				errs <- fmt.Errorf("%s: got reply %q (data %s) for %s", id, rep.RequestID, rep.Data, req.Parameters)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestRPCReportsPublishedBeforeTheReply(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	s.responder(t, echo)
	c := s.client(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	published := 0
	rep, err := c.Call(broker.WithPublished(ctx, func() { published++ }), request("req-published", time.Now().Add(5*time.Second)))
	if err != nil || rep.RequestID != "req-published" {
		t.Fatalf("Call = %v, %v", rep, err)
	}
	if published != 1 {
		t.Errorf("the published hook ran %d times, want 1", published)
	}
	// A call that cannot publish never reports it.
	published = 0
	if _, err := c.Call(broker.WithPublished(ctx, func() { published++ }), request("req-expired", time.Now().Add(-time.Second))); err == nil {
		t.Fatal("an expired request was published")
	}
	if published != 0 {
		t.Errorf("the published hook ran for a request that was not published")
	}
}

func TestRPCNeverWaitsPastDeadlineAndCountsLateReply(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	release := make(chan struct{})
	received := make(chan string, 1)
	s.responder(t, func(d amqp.Delivery) (amqp.Publishing, bool) {
		received <- d.CorrelationId
		<-release // answer only after the caller gave up
		return echo(d)
	})
	c := s.client(t, nil)
	waitFor(t, c.Connected, "client to connect")

	// The call gives up soon; the message itself lives long, so the responder gets it however slow the
	// machine is.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := c.Call(ctx, request("slow", time.Now().Add(30*time.Second)))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline exceeded, got %v", err)
	}
	waitReceived(t, received, "slow")
	close(release)
	waitFor(t, func() bool { return s.drops.Load() == 1 }, "late reply to be dropped and counted")
}

// waitReceived waits for the responder to report that it received the request with correlation id id.
func waitReceived(t *testing.T, received <-chan string, id string) {
	t.Helper()
	select {
	case got := <-received:
		if got != id {
			t.Fatalf("responder received %q, want %q", got, id)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("responder never received request %q", id)
	}
}

func TestRPCDropsUnknownReplies(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	received := make(chan string, 1)
	s.responder(t, func(d amqp.Delivery) (amqp.Publishing, bool) {
		received <- d.CorrelationId
		// A stray reply with a correlation id nobody waits for, and none for the real request.
		return amqp.Publishing{CorrelationId: "stray", Body: []byte("x")}, true
	})
	c := s.client(t, nil)
	waitFor(t, c.Connected, "client to connect")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := c.Call(ctx, request("real", time.Now().Add(30*time.Second)))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline exceeded, got %v", err)
	}
	waitReceived(t, received, "real")
	waitFor(t, func() bool { return s.drops.Load() == 1 }, "unknown reply to be counted")
	if c.Dropped() != 1 {
		t.Fatalf("Dropped() = %d", c.Dropped())
	}
}

func TestRPCUnroutableIsReported(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	c := s.client(t, nil)
	waitFor(t, c.Connected, "client to connect")
	// Delete the task queue behind the client's back: a mandatory publish must come back as unroutable
	// instead of vanishing.
	_, ch := brokertest.Channel(t, s.url)
	if _, err := ch.QueueDelete(s.topo.TaskQueue, false, false, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.Call(ctx, request("nowhere", time.Now().Add(5*time.Second)))
	if !errors.Is(err, broker.ErrUnroutable) {
		t.Fatalf("want ErrUnroutable, got %v", err)
	}
	if contract.Classify(err) != contract.Transient {
		t.Fatalf("unroutable should classify as transient, got %v", contract.Classify(err))
	}
}

func TestRPCBrokerUnreachableFailsFast(t *testing.T) {
	t.Parallel()
	c := broker.NewRPCClient(broker.RPCConfig{
		URL: "amqp://guest:guest@127.0.0.1:1/", Name: "unreachable", Topology: broker.NewTopology("nope"),
		ConnectWait: 200 * time.Millisecond, Logger: testLogger(t),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	callCtx, callCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer callCancel()
	_, err := c.Call(callCtx, request("x", time.Now().Add(10*time.Second)))
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("want ErrUnavailable, got %v", err)
	}
	if callCtx.Err() != nil {
		t.Fatal("call waited for its whole deadline instead of failing after ConnectWait")
	}
}

func TestRPCRecoversAfterConnectionLoss(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	s.responder(t, echo)
	var connects atomic.Int64
	name := brokertest.Name("rpc-reconnect")
	c := s.client(t, func(cfg *broker.RPCConfig) {
		cfg.Name = name
		cfg.OnConnect = func() { connects.Add(1) }
	})
	waitFor(t, c.Connected, "client to connect")
	call := func(id string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := c.Call(ctx, request(id, time.Now().Add(5*time.Second)))
		return err
	}
	if err := call("before"); err != nil {
		t.Fatal(err)
	}
	// Have the broker itself close the connection, as a broker restart or failover would.
	brokertest.CloseConnection(t, name)
	waitFor(t, func() bool { return connects.Load() >= 2 }, "client to reconnect")
	if err := call("after"); err != nil {
		t.Fatalf("call after reconnect: %v", err)
	}
}

func TestInspect(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	c := s.client(t, nil)
	waitFor(t, c.Connected, "client to connect")
	_, ch := brokertest.Channel(t, s.url)
	for range 3 {
		if err := ch.Publish("", s.topo.TaskQueue, false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	var st broker.QueueState
	waitFor(t, func() bool {
		var err error
		st, err = c.Inspect(context.Background(), s.topo.TaskQueue)
		return err == nil && st.Messages == 3
	}, "3 ready messages")
	if st.Consumers != 0 {
		t.Fatalf("consumers = %d", st.Consumers)
	}
	if _, err := c.Inspect(context.Background(), "no-such-queue-"+s.topo.TaskQueue); err == nil {
		t.Fatal("inspecting a missing queue should fail")
	}
	// The failed inspection must not have disturbed the client.
	if !c.Connected() {
		t.Fatal("client lost its channel after a failed inspection")
	}
}

// newConsumer sets up a task queue with a consumer of the given name and prefetch (not yet running), and
// a channel of the test's own on which the queue is declared.
func newConsumer(t *testing.T, name string, prefetch int) (*setup, *broker.Consumer, *amqp.Channel) {
	t.Helper()
	s := newSetup(t)
	cons := broker.NewConsumer(broker.ConsumerConfig{URL: s.url, Name: name, Topology: s.topo, Prefetch: prefetch, Logger: testLogger(t)})
	_, ch := brokertest.Channel(t, s.url)
	if err := s.topo.Declare(ch); err != nil {
		t.Fatal(err)
	}
	return s, cons, ch
}

func TestConsumerPrefetchAndStop(t *testing.T) {
	t.Parallel()
	s, cons, ch := newConsumer(t, "test-consumer", 2)
	for i := range 5 {
		if err := ch.Publish("", s.topo.TaskQueue, false, false, amqp.Publishing{Body: []byte(fmt.Sprint(i)), DeliveryMode: amqp.Persistent}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	got := make(chan *broker.Task, 10)
	done := make(chan struct{})
	go func() { _ = cons.Run(ctx, func(task *broker.Task) { got <- task }); close(done) }()

	// Without acks, prefetch 2 means exactly two deliveries arrive.
	held := []*broker.Task{<-got, <-got}
	select {
	case task := <-got:
		t.Fatalf("third delivery (%v) arrived despite prefetch 2", task.Invalid)
	case <-time.After(300 * time.Millisecond):
	}
	stop()
	<-done
	// After Stop, acks on the still-open channel work, and nothing new is delivered.
	for _, task := range held {
		if err := task.Settle(context.Background(), broker.Outcome{Action: broker.Ack}); err != nil {
			t.Fatalf("ack after stop: %v", err)
		}
	}
	select {
	case task := <-got:
		t.Fatalf("delivery (%v) after stop", task.Invalid)
	case <-time.After(300 * time.Millisecond):
	}
	if err := cons.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive(s.topo.TaskQueue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Messages != 3 {
		t.Fatalf("want the 3 unconsumed messages back in the queue, got %d", q.Messages)
	}
}

func TestPublisherConfirms(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	_, ch := brokertest.Channel(t, s.url)
	if err := s.topo.Declare(ch); err != nil {
		t.Fatal(err)
	}
	p := broker.NewPublisher(broker.PublisherConfig{URL: s.url, Name: "test-publisher", Logger: testLogger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = p.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer pcancel()
			if err := p.Publish(pctx, s.topo.TaskQueue, amqp.Publishing{Body: []byte(fmt.Sprint(i))}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Every confirmed publish is in the queue.
	q, err := ch.QueueDeclarePassive(s.topo.TaskQueue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Messages != 200 {
		t.Fatalf("queue holds %d messages, want 200", q.Messages)
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNotifyCancelReachesEveryBoundQueue(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	c := s.client(t, nil)
	waitFor(t, c.Connected, "client to connect") // it declares the topology, cancel exchange included
	_, ch := brokertest.Channel(t, s.url)
	var queues []string
	for range 2 { // two workers, each with a queue of its own
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(q.Name, "", s.topo.CancelExchange, false, nil); err != nil {
			t.Fatal(err)
		}
		queues = append(queues, q.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.NotifyCancel(ctx, "job-42"); err != nil {
		t.Fatal(err)
	}
	if err := c.NotifyCancel(ctx, ""); err == nil {
		t.Error("a cancel notice without a request id was sent")
	}
	for _, q := range queues {
		var d amqp.Delivery
		var ok bool
		for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			var err error
			if d, ok, err = ch.Get(q, true); err != nil {
				t.Fatal(err)
			}
		}
		if !ok || d.Type != broker.CancelNoticeType || d.CorrelationId != "job-42" {
			t.Errorf("queue %s: got %v type %q id %q, want the cancel notice of job-42", q, ok, d.Type, d.CorrelationId)
		}
	}
}

func TestConsumerLivePrefetch(t *testing.T) {
	t.Parallel()
	s, cons, ch := newConsumer(t, "test-live-prefetch", 2)
	for i := range 20 {
		if err := ch.Publish("", s.topo.TaskQueue, false, false, amqp.Publishing{Body: []byte(fmt.Sprint(i)), DeliveryMode: amqp.Persistent}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	got := make(chan *broker.Task, 32)
	done := make(chan struct{})
	go func() { _ = cons.Run(ctx, func(task *broker.Task) { got <- task }); close(done) }()
	var held []*broker.Task
	take := func(n int, why string) {
		t.Helper()
		for range n {
			select {
			case task := <-got:
				held = append(held, task)
			case <-time.After(10 * time.Second):
				t.Fatalf("%s: only %d deliveries held", why, len(held))
			}
		}
		select {
		case task := <-got:
			t.Fatalf("%s: one delivery too many (%d held, then %s)", why, len(held), task.MessageID)
		case <-time.After(300 * time.Millisecond):
		}
		if want, n := cons.Prefetch(); n != len(held) {
			t.Fatalf("%s: consumer counts %d held (want %d), the test holds %d", why, n, want, len(held))
		}
	}
	settle := func(n int) {
		for _, task := range held[:n] {
			if err := task.Settle(context.Background(), broker.Outcome{Action: broker.Ack}); err != nil {
				t.Fatal(err)
			}
		}
		held = held[n:]
	}
	take(2, "prefetch 2")
	if err := cons.SetPrefetch(5); err != nil {
		t.Fatal(err)
	}
	take(3, "raised to 5")
	if err := cons.SetPrefetch(3); err != nil {
		t.Fatal(err)
	}
	take(0, "lowered to 3 while 5 are held") // nothing is taken back, nothing new arrives
	settle(2)
	take(0, "3 held, 3 allowed")
	settle(1)
	take(1, "2 held after a settle, 3 allowed")
	settle(3)
	take(3, "all settled, 3 allowed")
	settle(3)
	take(3, "again")
	settle(3)
	take(3, "and again")
	settle(3)
	// 2+3+1+3+3+3 = 15 taken and settled; the other 5 are back in the queue once the consumer has closed
	// (what it received and nobody settled is requeued): none lost.
	stop()
	<-done
	if err := cons.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		q, err := ch.QueueDeclarePassive(s.topo.TaskQueue, true, false, false, false, nil)
		return err == nil && q.Messages == 5
	}, "the 5 unsettled messages back in the queue")
}

// While tasks flow (published as they are worked off, each held a few milliseconds), an admission
// controller changing the prefetch every few milliseconds must not bounce a single delivery back to the
// queue: every task reaches the handler exactly once, never marked redelivered. (Cancelling a
// subscription with deliveries on their way to it had the broker hand them back: each change redelivered
// tasks, and a task bounced three times was dead-lettered with delivery_limit.)
func TestConsumerPrefetchChangesBounceNothing(t *testing.T) {
	t.Parallel()
	s, cons, ch := newConsumer(t, "test-prefetch-flow", 8)
	const total = 1500
	var (
		mu          sync.Mutex
		seen        = map[string]int{}
		redelivered []string
		handled     atomic.Int64
	)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = cons.Run(ctx, func(task *broker.Task) {
			mu.Lock()
			seen[task.MessageID]++
			if task.Redelivered {
				redelivered = append(redelivered, task.MessageID)
			}
			mu.Unlock()
			go func() {
				time.Sleep(time.Duration(rand.IntN(4000)) * time.Microsecond)
				if err := task.Settle(context.Background(), broker.Outcome{Action: broker.Ack}); err != nil {
					t.Error(err)
				}
				handled.Add(1)
			}()
		})
		close(done)
	}()
	// The controller: a new prefetch between 1 and 40 every 2–10 ms, until every task is handled.
	changes := 0
	ctlDone := make(chan struct{})
	go func() {
		defer close(ctlDone)
		for handled.Load() < total && ctx.Err() == nil {
			if err := cons.SetPrefetch(1 + rand.IntN(40)); err != nil {
				t.Error(err)
				return
			}
			changes++
			time.Sleep(time.Duration(2+rand.IntN(9)) * time.Millisecond)
		}
	}()
	// The producer keeps a backlog of about 20 tasks, so subscriptions both fill up and run dry.
	for i := 0; i < total; {
		if i-int(handled.Load()) > 20 {
			time.Sleep(time.Millisecond)
			continue
		}
		if err := ch.Publish("", s.topo.TaskQueue, false, false, amqp.Publishing{MessageId: fmt.Sprint(i), Body: []byte("{}"), DeliveryMode: amqp.Persistent}); err != nil {
			t.Fatal(err)
		}
		i++
	}
	waitFor(t, func() bool { return handled.Load() == total }, "every task handled")
	<-ctlDone
	stop()
	<-done
	if err := cons.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range total {
		if n := seen[fmt.Sprint(i)]; n != 1 {
			t.Errorf("task %d reached the handler %d times", i, n)
		}
	}
	if len(redelivered) > 0 {
		t.Errorf("%d of %d deliveries were redeliveries (bounced by a prefetch change), e.g. %v", len(redelivered), total, redelivered[:min(5, len(redelivered))])
	}
	t.Logf("%d tasks, %d prefetch changes", total, changes)
}
