package task

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/broker"
)

// keyedPublisher records every publish with its routing key; it fails publishes to failKey.
type keyedPublisher struct {
	mu      sync.Mutex
	failKey string
	sent    map[string][]amqp.Publishing
}

func (p *keyedPublisher) Publish(_ context.Context, key string, msg amqp.Publishing) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if key == p.failKey {
		return errors.New("publish failed")
	}
	if p.sent == nil {
		p.sent = map[string][]amqp.Publishing{}
	}
	p.sent[key] = append(p.sent[key], msg)
	return nil
}

func TestDeadLettersCarryTheReason(t *testing.T) {
	t.Parallel()
	for _, failing := range []bool{false, true} {
		pub := &keyedPublisher{}
		if failing {
			pub.failKey = "tasks.dead"
		}
		w := &testWorker{New(Config{ID: "w-test", Concurrency: 1, Repository: fakeRepo{}, Runner: fakeRunner{ok},
			Metrics: &recorder{}, Logger: slog.New(slog.DiscardHandler)}),
			broker.Settler{Publisher: pub, DeadLetterQueue: "tasks.dead", ID: "w-test"}}
		acks := newAckLog()
		w.Handle(amqp.Delivery{Acknowledger: acks, Body: []byte(`{"version":1,"request_id":"bad","script_name":"../x"}`),
			CorrelationId: "bad", ReplyTo: "amq.rabbitmq.reply-to.x", RoutingKey: "tasks", ContentType: "application/json"})
		got := acks.wait(t)
		w.Handle(delivery(t, acks, "late", time.Second, time.Now().Add(-time.Second)))
		gotExpired := acks.wait(t)
		if failing {
			// The dead-letter queue cannot be reached: the broker dead-letters the task instead.
			if got != "dead-letter" || gotExpired != "dead-letter" {
				t.Fatalf("with the dead-letter publish failing, tasks settled with %s and %s", got, gotExpired)
			}
			continue
		}
		if got != "ack" || gotExpired != "ack" {
			t.Fatalf("tasks moved to the dead-letter queue settled with %s and %s, want ack", got, gotExpired)
		}
		dead := pub.sent["tasks.dead"]
		if len(dead) != 2 {
			t.Fatalf("dead letters published: %d", len(dead))
		}
		for i, want := range []string{"invalid: script_name", "expired: the caller's deadline"} {
			reason, _ := dead[i].Headers["x-scrape-rejected-reason"].(string)
			if !strings.HasPrefix(reason, want) || dead[i].Headers["x-scrape-rejected-by"] != "w-test" ||
				dead[i].DeliveryMode != amqp.Persistent || dead[i].Expiration != "" {
				t.Errorf("dead letter %d: reason %q, headers %v", i, reason, dead[i].Headers)
			}
		}
		if dead[0].Headers["x-scrape-source-queue"] != "tasks" || string(dead[0].Body) != `{"version":1,"request_id":"bad","script_name":"../x"}` {
			t.Errorf("dead letter does not keep the task: %v %s", dead[0].Headers, dead[0].Body)
		}
	}
}
