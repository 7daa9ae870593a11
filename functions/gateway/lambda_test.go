package gateway

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/brokertest"
	"github.com/scrapeplatform/platform/shared/contract"
)

// TestLambdaAdapterWithRealBroker drives API Gateway v2 event fixtures through the same adapter the Lambda
// main uses into the real handler, in apigateway auth mode, with a real RabbitMQ and a responder that
// answers like a worker.
func TestLambdaAdapterWithRealBroker(t *testing.T) {
	t.Parallel()
	url := brokertest.URL(t)
	queue := brokertest.Name("test-lambda")
	topo := broker.NewTopology(queue)
	brokertest.DeleteQueues(t, url, []string{topo.TaskQueue, topo.DeadLetterQueue}, []string{topo.DeadLetterExchange})

	// Responder: echo the parameters back with the subject that the gateway put into the request.
	_, ch := brokertest.Channel(t, url)
	if err := topo.Declare(ch); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for d := range ds {
			req, err := contract.ParseRequest(d)
			if err != nil {
				_ = d.Reject(false)
				continue
			}
			data, _ := json.Marshal(map[string]any{"parameters": req.Parameters, "subject": req.Subject})
			rep := contract.Reply{Version: contract.Version, RequestID: req.RequestID, Status: contract.StatusCompleted, Data: data, WorkerID: "responder"}
			p, _ := rep.Publishing(time.Now())
			_ = ch.Publish("", d.ReplyTo, false, false, p)
			_ = d.Ack(false)
		}
	}()

	cfg, err := LoadConfig(func(k string) string {
		return map[string]string{"RABBITMQ_URL": url, "RABBITMQ_TASK_QUEUE": queue}[k]
	}, "apigateway")
	if err != nil {
		t.Fatal(err)
	}
	h, client, err := Build(cfg, "test-lambda-gateway", testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = client.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	adapter := httpadapter.NewV2(h)

	invoke := func(fixture string) (events.APIGatewayV2HTTPResponse, map[string]any) {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join("testdata", fixture))
		if err != nil {
			t.Fatal(err)
		}
		var ev events.APIGatewayV2HTTPRequest
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatalf("%s: %v", fixture, err)
		}
		ictx, icancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer icancel()
		resp, err := adapter.ProxyWithContext(ictx, ev)
		if err != nil {
			t.Fatalf("%s: adapter returned an error (API Gateway would answer 502): %v", fixture, err)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(resp.Body), &m); err != nil {
			t.Fatalf("%s: body not JSON: %q", fixture, resp.Body)
		}
		return resp, m
	}

	waitConnected(t, client)
	resp, m := invoke("apigw-v2-health.json")
	if resp.StatusCode != 200 || m["status"] != "healthy" {
		t.Fatalf("health: %d %v", resp.StatusCode, m)
	}

	resp, m = invoke("apigw-v2-scrape-jwt.json")
	if resp.StatusCode != 200 || m["status"] != "completed" {
		t.Fatalf("jwt scrape: %d %v", resp.StatusCode, m)
	}
	data := m["data"].(map[string]any)
	if data["subject"] != "user-42" || data["parameters"].(map[string]any)["q"] != "lambda" {
		t.Fatalf("jwt scrape data: %v", data)
	}
	if ct := resp.Headers["Content-Type"]; ct != "application/json" {
		t.Fatalf("content type %q", ct)
	}

	resp, m = invoke("apigw-v2-scrape-iam.json")
	if resp.StatusCode != 200 || m["data"].(map[string]any)["subject"] != "arn:aws:sts::123456789012:assumed-role/scraper-client/batch-job" {
		t.Fatalf("iam scrape: %d %v", resp.StatusCode, m)
	}

	// A bearer header without an authorizer context is not trusted in apigateway mode.
	resp, m = invoke("apigw-v2-scrape-noauth.json")
	if resp.StatusCode != 401 || m["error_code"] != "unauthorized" {
		t.Fatalf("noauth: %d %v", resp.StatusCode, m)
	}
	resp, m = invoke("apigw-v2-scrape-badjson.json")
	if resp.StatusCode != 400 || m["error_code"] != "invalid_request" {
		t.Fatalf("bad json: %d %v", resp.StatusCode, m)
	}
}

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
	}, "jwt")
	if err != nil {
		t.Fatal(err)
	}
	h, client, err := Build(cfg, "test-noworker", testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = client.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitConnected(t, client)

	start := time.Now()
	w, m := do(t, h, "POST", "/scrape", `{"script_name":"echo","timeout":0.5}`, map[string]string{"Authorization": "Bearer " + token(t)})
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
