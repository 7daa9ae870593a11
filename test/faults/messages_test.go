package faults

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/brokertest"
	"github.com/scrapeplatform/platform/shared/contract"
)

// publishConfirmed publishes msg to the default exchange and waits for the broker's confirm.
func publishConfirmed(t *testing.T, ch *amqp.Channel, routingKey string, msg amqp.Publishing) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", routingKey, false, false, msg)
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if ok, err := dc.WaitContext(ctx); !ok || err != nil {
		t.Fatalf("no confirm: %v %v", ok, err)
	}
}

// validRequest returns a well-formed request publishing for script, due in a minute, with replies to
// replyTo (direct reply-to needs a consumer on the publishing channel, which these tests do not have).
func validRequest(t *testing.T, id, script, replyTo string) amqp.Publishing {
	t.Helper()
	req := contract.Request{Version: contract.Version, RequestID: id, ScriptName: script, Parameters: json.RawMessage(`{}`),
		Budget: contract.Budget{Timeout: 5, Deadline: time.Now().Add(time.Minute)}}
	msg, err := req.Publishing(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	msg.ReplyTo = replyTo
	return msg
}

// TestPoisonMessages publishes tasks no gateway would send straight onto the task queue. Each must be
// dead-lettered once, with the reason, while the worker keeps running: no crash, no redelivery loop.
func TestPoisonMessages(t *testing.T) {
	t.Parallel()
	e := start(t, options{workers: 1, noGateway: true})
	conn, ch := brokertest.Channel(t, e.amqpURL)
	_ = conn
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	replies, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	withReply := func(m amqp.Publishing, id string) amqp.Publishing {
		m.CorrelationId, m.MessageId, m.ReplyTo = id, id, replies.Name
		return m
	}
	garbage := make([]byte, 2048)
	_, _ = rand.Read(garbage)
	wrongVersion := validRequest(t, "poison-version", "echo", replies.Name)
	wrongVersion.Body = []byte(strings.Replace(string(wrongVersion.Body), `"version":1`, `"version":99`, 1))
	textPlain := validRequest(t, "poison-content-type", "echo", replies.Name)
	textPlain.ContentType = "text/plain"
	wrongType := validRequest(t, "poison-type", "echo", replies.Name)
	wrongType.Type = "scrape.request.v9"
	mismatch := validRequest(t, "poison-mismatch", "echo", replies.Name)
	mismatch.CorrelationId = "someone-else"
	traversal := validRequest(t, "poison-traversal", "echo", replies.Name)
	traversal.Body = []byte(strings.Replace(string(traversal.Body), `"script_name":"echo"`, `"script_name":"../../etc"`, 1))
	expired := validRequest(t, "poison-expired", "echo", replies.Name)
	expired.Body = []byte(strings.Replace(string(expired.Body), `"deadline":"`, `"deadline":"2001-01-01T00:00:00Z","x":"`, 1))
	expired.Expiration = ""

	cases := []struct {
		name string
		msg  amqp.Publishing
	}{
		{"malformed JSON body", withReply(amqp.Publishing{ContentType: contract.ContentType, Type: contract.RequestType, Body: []byte(`{"version":1,"request_id":"poison-json",`)}, "poison-json")},
		{"binary garbage", withReply(amqp.Publishing{ContentType: "application/octet-stream", Body: garbage}, "poison-garbage")},
		{"wrong content type", textPlain},
		{"unknown version", wrongVersion},
		{"wrong message type", wrongType},
		{"missing fields", withReply(amqp.Publishing{ContentType: contract.ContentType, Type: contract.RequestType, Body: []byte(`{"version":1}`)}, "poison-fields")},
		{"oversize body", withReply(amqp.Publishing{ContentType: contract.ContentType, Type: contract.RequestType, Body: []byte(`{"pad":"` + strings.Repeat("x", 600<<10) + `"}`)}, "poison-oversize")},
		{"correlation id does not match the body", mismatch},
		{"script name with path traversal", traversal},
		{"deadline long past", expired},
	}
	start := time.Now()
	for _, c := range cases {
		publishConfirmed(t, ch, e.queue, c.msg)
	}

	// Every one ends in the dead-letter queue, once.
	var dead []amqp.Delivery
	deadline := time.Now().Add(30 * time.Second)
	for len(dead) < len(cases) {
		d, ok, err := ch.Get(e.topo.DeadLetterQueue, true)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			dead = append(dead, d)
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d poison messages reached the dead-letter queue", len(dead), len(cases))
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	time.Sleep(500 * time.Millisecond) // a redelivery loop would show up as more dead letters or tasks
	if extra, ok, _ := ch.Get(e.topo.DeadLetterQueue, true); ok {
		t.Errorf("an extra dead letter: %s", extra.Body)
	}
	if n := queueDepth(t, e.amqpURL, e.queue); n != 0 {
		t.Errorf("%d messages left in the task queue", n)
	}
	var reasons []string
	for _, d := range dead {
		reason, _ := d.Headers["x-scrape-rejected-reason"].(string)
		if reason == "" {
			t.Errorf("dead letter %q carries no reason (headers %v)", d.CorrelationId, d.Headers)
		}
		reasons = append(reasons, fmt.Sprintf("%s: %s", d.CorrelationId, firstLine(reason, 90)))
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		t.Log(r)
	}
	// The worker lived through it and still serves.
	select {
	case <-e.workers[0].proc.Done():
		t.Fatalf("the worker died: %v", e.workers[0].proc.ExitErr())
	default:
	}
	resp, err := http.Get(strings.TrimSuffix(e.workers[0].metricsURL, "/metrics") + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("worker health after the poison: %v %v", resp, err)
	}
	resp.Body.Close()
	invalidReplies := 0
	for {
		d, ok, err := ch.Get(replies.Name, true)
		if err != nil || !ok {
			break
		}
		if strings.Contains(string(d.Body), `"invalid_request"`) {
			invalidReplies++
		}
	}
	report(t, "poison messages (10 kinds: malformed, garbage, wrong content type/version/type, missing fields, oversize, id mismatch, traversal, expired)",
		"each dead-lettered once with a reason; worker keeps running",
		fmt.Sprintf("10/10 dead-lettered once, each with x-scrape-rejected-reason; %d of them answered invalid_request to their reply queue (not the expired one: nobody waits for it); worker healthy, 0 restarts", invalidReplies),
		fmt.Sprintf("all dead-lettered within %s; 0 left in the task queue", ms(took)))
}

// TestDeliveryLimit: a task whose every delivery kills its consumer (modelled by a consumer that closes its
// channel without acknowledging, as a crashing worker does) is delivered at most delivery-limit + 1 times,
// then dead-lettered.
func TestDeliveryLimit(t *testing.T) {
	t.Parallel()
	url := brokertest.URL(t)
	topo := broker.NewTopology(brokertest.Name("faults-limit"))
	brokertest.DeleteQueues(t, url, []string{topo.TaskQueue, topo.DeadLetterQueue}, []string{topo.DeadLetterExchange})
	conn, ch := brokertest.Channel(t, url)
	if err := topo.Declare(ch); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	publishConfirmed(t, ch, topo.TaskQueue, validRequest(t, "poison-crasher", "echo", ""))

	deliveries := 0
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		_, ok, err := c.Get(topo.TaskQueue, false)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			deliveries++
		}
		c.Close() // "crash": the delivery is returned unacknowledged
		if d, ok, _ := ch.Get(topo.DeadLetterQueue, true); ok {
			reason := ""
			if deaths, ok := d.Headers["x-death"].([]any); ok && len(deaths) > 0 {
				reason, _ = deaths[0].(amqp.Table)["reason"].(string)
			}
			if deliveries > topo.DeliveryLimit+1 {
				t.Errorf("delivered %d times with a delivery limit of %d", deliveries, topo.DeliveryLimit)
			}
			report(t, "task that crashes every worker it reaches", fmt.Sprintf("dead-lettered after at most %d deliveries (delivery limit %d)", topo.DeliveryLimit+1, topo.DeliveryLimit),
				fmt.Sprintf("dead-lettered (x-death reason %q)", reason), fmt.Sprintf("%d deliveries", deliveries))
			return
		}
		if time.Now().After(deadline) || deliveries > 20 {
			t.Fatalf("not dead-lettered after %d deliveries", deliveries)
		}
		if !ok {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestLateAndDuplicateReplies stands in for workers with a responder that answers one request twice, answers
// a request nobody sent, and answers another only after its caller has given up. The callers get one
// answer each; the gateway drops and counts the rest.
func TestLateAndDuplicateReplies(t *testing.T) {
	t.Parallel()
	e := start(t, options{workers: 0})
	conn, ch := brokertest.Channel(t, e.amqpURL)
	_ = conn
	if err := e.topo.Declare(ch); err != nil {
		t.Fatal(err)
	}
	tasks, err := ch.Consume(e.queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	reply := func(d amqp.Delivery, id string) {
		rep := contract.Reply{Version: contract.Version, RequestID: id, Status: contract.StatusCompleted,
			Data: json.RawMessage(`{"from":"responder"}`), WorkerID: "responder"}
		msg, err := rep.Publishing(time.Now())
		if err != nil {
			t.Error(err)
			return
		}
		if err := ch.PublishWithContext(context.Background(), "", d.ReplyTo, false, false, msg); err != nil {
			t.Error(err)
		}
	}
	var mu sync.Mutex
	var lateDone = make(chan struct{})
	go func() {
		for d := range tasks {
			var req contract.Request
			_ = json.Unmarshal(d.Body, &req)
			_ = d.Ack(false)
			params := string(req.Parameters)
			mu.Lock()
			switch {
			case strings.Contains(params, "duplicate"):
				reply(d, req.RequestID)
				reply(d, req.RequestID)                    // a duplicate
				reply(d, "no-such-request-"+req.RequestID) // and one for a request nobody sent
			case strings.Contains(params, "late"):
				go func() {
					time.Sleep(time.Until(req.Deadline) + 500*time.Millisecond) // after the caller's deadline
					mu.Lock()
					reply(d, req.RequestID)
					mu.Unlock()
					close(lateDone)
				}()
			}
			mu.Unlock()
		}
	}()

	dup := e.scrape("echo", map[string]any{"mode": "duplicate"}, 5)
	if dup.code != 200 || dup.status() != "completed" {
		t.Fatalf("duplicate: %d %s %v", dup.code, dup.raw, dup.err)
	}
	late := e.scrape("echo", map[string]any{"mode": "late"}, 1)
	if late.code != 504 || late.errorCode() != "no_worker_response" {
		t.Fatalf("late: %d %s %v", late.code, late.raw, late.err)
	}
	select {
	case <-lateDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the responder never sent its late reply")
	}
	var lateDropped, unknownDropped float64
	deadline := time.Now().Add(5 * time.Second)
	for {
		lateDropped = metric(t, e.gatewayURL+"/metrics", `scraping_rpc_replies_dropped_total{reason="late"}`)
		unknownDropped = metric(t, e.gatewayURL+"/metrics", `scraping_rpc_replies_dropped_total{reason="unknown"}`)
		if (lateDropped >= 1 && unknownDropped >= 2) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if lateDropped != 1 || unknownDropped != 2 {
		t.Fatalf("dropped replies: late=%v unknown=%v; want 1 and 2", lateDropped, unknownDropped)
	}
	report(t, "late, duplicate and unknown replies", "dropped and counted; each caller answered once",
		fmt.Sprintf("caller 1: one 200; caller 2: 504 at its deadline; dropped late=%v, unknown=%v (duplicate + stray)", lateDropped, unknownDropped),
		fmt.Sprintf("504 after %s (timeout 1 s + 1.5 s grace)", ms(late.latency)))
}
