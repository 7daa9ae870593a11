package queuedepth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/brokertest"
)

// managementURL returns the management API of the test broker (RABBITMQ_MANAGEMENT_URL, default
// http://127.0.0.1:15672, user guest/guest), failing t when it does not answer.
func managementURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("RABBITMQ_MANAGEMENT_URL")
	if u == "" {
		u = "http://127.0.0.1:15672"
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u + "/api/overview")
	if err != nil {
		t.Fatalf("these tests need RabbitMQ's management API at %s (enable it with `rabbitmq-plugins enable rabbitmq_management`; .ci/run does): %v", u, err)
	}
	resp.Body.Close()
	return u
}

// fixture is a real task queue with its dead-letter queue on the test broker, holding a known number of
// ready, unacknowledged and dead-lettered messages.
type fixture struct {
	topo                 broker.Topology
	ready, unacked, dead int
}

// newFixture declares a fresh topology, publishes ready+unacked tasks, has one consumer hold unacked of
// them unacknowledged, and puts dead messages into the dead-letter queue.
func newFixture(t *testing.T, ready, unacked, dead int) fixture {
	t.Helper()
	amqpURL := brokertest.URL(t)
	topo := broker.NewTopology(brokertest.Name("queuedepth"))
	brokertest.DeleteQueues(t, amqpURL, []string{topo.TaskQueue, topo.DeadLetterQueue}, []string{topo.DeadLetterExchange})
	_, ch := brokertest.Channel(t, amqpURL)
	if err := topo.Declare(ch); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, ready+unacked+dead))
	publish := func(queue string, n int) {
		for i := range n {
			err := ch.PublishWithContext(context.Background(), "", queue, true, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(fmt.Sprint(i))})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	publish(topo.TaskQueue, ready+unacked)
	publish(topo.DeadLetterQueue, dead)
	for range ready + unacked + dead {
		if c := <-confirms; !c.Ack {
			t.Fatal("publish not confirmed")
		}
	}
	if unacked > 0 {
		_, cch := brokertest.Channel(t, amqpURL)
		if err := cch.Qos(unacked, 0, false); err != nil {
			t.Fatal(err)
		}
		if _, err := cch.Consume(topo.TaskQueue, "", false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	return fixture{topo: topo, ready: ready, unacked: unacked, dead: dead}
}

// eventually polls f until it returns nil or 30 s pass (the management API refreshes its counters
// every few seconds).
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func TestManagementQueue(t *testing.T) {
	t.Parallel()
	base := managementURL(t)
	fx := newFixture(t, 3, 2, 4)
	m, err := NewManagement(base, "guest", "guest", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	eventually(t, func() error {
		q, err := m.Queue(ctx, "/", fx.topo.TaskQueue)
		if err != nil {
			return err
		}
		if want := (QueueStats{Ready: 3, Unacknowledged: 2, Messages: 5, Consumers: 1, Capacity: 2}); q != want {
			return fmt.Errorf("task queue = %+v, want %+v", q, want)
		}
		return nil
	})
	eventually(t, func() error {
		q, err := m.Queue(ctx, "/", fx.topo.DeadLetterQueue)
		if err != nil {
			return err
		}
		if q.Messages != 4 || q.Consumers != 0 {
			return fmt.Errorf("dead-letter queue = %+v, want 4 messages and no consumer", q)
		}
		return nil
	})

	if _, err := m.Queue(ctx, "/", fx.topo.TaskQueue+"-missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing queue: error = %v, want ErrNotFound", err)
	}
	if _, err := m.Queue(ctx, "no-such-vhost", fx.topo.TaskQueue); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing vhost: error = %v, want ErrNotFound", err)
	}
}

func TestManagementNodes(t *testing.T) {
	t.Parallel()
	m, err := NewManagement(managementURL(t), "guest", "guest", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := m.Nodes(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) == 0 {
		t.Fatal("no nodes")
	}
	for _, n := range nodes {
		if !strings.Contains(n.Name, "@") || !n.Running || n.MemUsed <= 0 || n.MemLimit <= 0 {
			t.Fatalf("implausible node %+v", n)
		}
	}
}

func TestManagementRefusesBadCredentials(t *testing.T) {
	t.Parallel()
	m, err := NewManagement(managementURL(t), "guest", "wrong-password", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Nodes(context.Background())
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("error = %v, want a 401", err)
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Fatalf("error leaks the password: %v", err)
	}
}

// Each refusal of the management API says what to do about it; a missing queue or policy is ErrNotFound.
// (A fake server: the real broker's 403 and 400 need a user without tags and a malformed policy.)
func TestManagementExplainsRefusals(t *testing.T) {
	t.Parallel()
	for code, want := range map[int]string{
		http.StatusNotFound:            ErrNotFound.Error(),
		http.StatusUnauthorized:        "refused the credentials (401)",
		http.StatusForbidden:           "needs the policymaker or administrator tag",
		http.StatusBadRequest:          "refused the request (400): bad pattern",
		http.StatusInternalServerError: "answered 500 Internal Server Error",
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "bad pattern", code)
		}))
		m, err := NewManagement(srv.URL, "monitoring", "s3cret", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_, err = m.EnsurePolicy(context.Background(), "/", "scraping_tasks-bound", QueueBoundPolicy("scraping_tasks", 10, "queues", 10))
		srv.Close()
		if code == http.StatusNotFound {
			// No policy yet: it is written, and the write's 404 is the error.
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%d: error %v, want ErrNotFound", code, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%d: error %v, want one containing %q and not the password", code, err, want)
		}
	}
}
