package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/contract"
)

// An RPC round trip over a real RabbitMQ (RABBITMQ_URL, default the local one): the gateway's side calls
// with a contract.Request; the worker's side consumes it as a Task and settles it with a reply and an ack.
func Example_rpc() {
	url := os.Getenv("RABBITMQ_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	topo := broker.NewTopology("example-" + strconv.FormatInt(time.Now().UnixNano(), 36))
	ctx, stop := context.WithCancel(context.Background())
	defer stop()

	// The worker's side: replies go out through a publisher of their own.
	replies := broker.NewPublisher(broker.PublisherConfig{URL: url, Name: "example-replies"})
	go func() { _ = replies.Run(ctx) }()
	consumer := broker.NewConsumer(broker.ConsumerConfig{URL: url, Name: "example-worker", Topology: topo,
		Settler: broker.Settler{Publisher: replies, DeadLetterQueue: topo.DeadLetterQueue, ID: "example-worker"}})
	defer func() { _ = consumer.Shutdown(context.Background()) }()
	go func() {
		_ = consumer.Run(ctx, func(task *broker.Task) {
			if task.Invalid != nil {
				_ = task.Settle(ctx, broker.Outcome{Action: broker.DeadLetter, Reason: task.Invalid.Error()})
				return
			}
			rep := &contract.Reply{Version: contract.Version, RequestID: task.Request.RequestID,
				Status: contract.StatusCompleted, Data: task.Request.Parameters, WorkerID: "example-worker"}
			_ = task.Settle(ctx, broker.Outcome{Reply: rep, Action: broker.Ack})
		})
	}()

	// The gateway's side.
	client := broker.NewRPCClient(broker.RPCConfig{URL: url, Name: "example-gateway", Topology: topo})
	go func() { _ = client.Run(ctx) }()
	req := &contract.Request{Version: contract.Version, RequestID: "example-1", ScriptName: "example_scraper",
		Parameters: json.RawMessage(`{"url":"https://example.com"}`),
		Budget:     contract.NewBudget(time.Now(), 10*time.Second, contract.DefaultReplyGrace, time.Time{})}
	callCtx, cancel := context.WithDeadline(ctx, req.WaitUntil())
	defer cancel()
	rep, err := client.Call(callCtx, req)
	if err != nil {
		fmt.Println("call failed:", err)
		return
	}
	fmt.Println(rep.RequestID, rep.Status, rep.WorkerID, string(rep.Data))

	// Tidy up the example's queues.
	conn, err := broker.Dial(ctx, url, "example-cleanup", 10*time.Second)
	if err == nil {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(topo.TaskQueue, false, false, false)
			_, _ = ch.QueueDelete(topo.DeadLetterQueue, false, false, false)
			_ = ch.ExchangeDelete(topo.DeadLetterExchange, false, false)
		}
		_ = conn.Close()
	}
	// Output:
	// example-1 completed example-worker {"url":"https://example.com"}
}
