package localedge

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/auth"
	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/brokertest"
	"github.com/scrapeplatform/platform/shared/testlog"
)

const testSecret = "0123456789abcdef0123456789abcdef-test"

// TestScrapeWithoutWorkersTimesOut: with a real broker but nobody consuming, the gateway answers 504
// within the request's deadline, and the task, now useless, expires from the queue.
func TestScrapeWithoutWorkersTimesOut(t *testing.T) {
	t.Parallel()
	url := brokertest.URL(t)
	queue := brokertest.Name("test-noworker")
	topo := broker.NewTopology(queue)
	brokertest.DeleteQueues(t, url, []string{topo.TaskQueue, topo.DeadLetterQueue}, []string{topo.DeadLetterExchange})
	cfg, err := LoadConfig(func(k string) string {
		return map[string]string{"RABBITMQ_URL": url, "RABBITMQ_TASK_QUEUE": queue, "JWT_SECRET": testSecret, "SCRAPE_REPLY_GRACE": "0.2"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	h, client, err := Build(cfg, "test-noworker", testlog.New(t, slog.LevelInfo), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = client.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitConnected(t, client)

	start := time.Now()
	tok, err := auth.IssueHS256([]byte(testSecret), auth.Claims{Subject: "tester"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("POST", "/scrape", strings.NewReader(`{"script_name":"echo","timeout":0.5}`))
	r.Header.Set("Authorization", "Bearer "+tok)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("body is not JSON: %q", w.Body.String())
	}
	if w.Code != 504 || m["error_code"] != "no_worker_response" {
		t.Fatalf("got %d %v", w.Code, m)
	}
	if time.Since(start) < 500*time.Millisecond {
		t.Fatal("answered 504 before the request's own timeout")
	}
	// The expired task is dead-lettered by the broker rather than run later for nobody.
	_, ch := brokertest.Channel(t, url)
	deadline := time.Now().Add(10 * time.Second)
	for {
		q, err := ch.QueueDeclarePassive(topo.DeadLetterQueue, true, false, false, false, nil)
		if err == nil && q.Messages == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expired task not dead-lettered: %+v %v", q, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var d amqp.Delivery
	d, ok, err := ch.Get(topo.DeadLetterQueue, true)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if reason := deathReason(d); reason != "expired" {
		t.Fatalf("dead-letter reason %q, want expired", reason)
	}
}

func deathReason(d amqp.Delivery) string {
	deaths, _ := d.Headers["x-death"].([]any)
	if len(deaths) == 0 {
		return ""
	}
	first, _ := deaths[0].(amqp.Table)
	r, _ := first["reason"].(string)
	return r
}

func waitConnected(t *testing.T, c *broker.RPCClient) {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for !c.Connected() {
		if time.Now().After(end) {
			t.Fatal("client did not connect")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
