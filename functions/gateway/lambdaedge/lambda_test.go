package lambdaedge

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/brokertest"
	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/testlog"
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
	})
	if err != nil {
		t.Fatal(err)
	}
	h, client, err := Build(cfg, "test-lambda-gateway", testlog.New(t, slog.LevelInfo), nil)
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
		raw, err := os.ReadFile(filepath.Join("..", "testdata", fixture))
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
