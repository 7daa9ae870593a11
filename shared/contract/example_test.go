package contract_test

import (
	"encoding/json"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/contract"
)

// A request with its time budget, the AMQP message that carries it, and the worker's side: parse, then the
// time the script may run.
func Example() {
	accepted := time.Date(2026, 12, 5, 6, 0, 0, 0, time.UTC)
	req := contract.Request{
		Version:    contract.Version,
		RequestID:  "req-1",
		ScriptName: "example_scraper",
		Parameters: json.RawMessage(`{"url":"https://example.com"}`),
		// A 3 s timeout, 1.5 s reply grace, no invocation deadline of our own.
		Budget: contract.NewBudget(accepted, 3*time.Second, contract.DefaultReplyGrace, time.Time{}),
	}
	msg, err := req.Publishing(accepted)
	if err != nil {
		panic(err)
	}
	fmt.Println("type:", msg.Type, "correlation_id:", msg.CorrelationId, "reply_to:", msg.ReplyTo)
	fmt.Println("expiration (ms):", msg.Expiration)

	// The worker receives it as a delivery.
	got, err := contract.ParseRequest(amqp.Delivery{Body: msg.Body, CorrelationId: msg.CorrelationId, Type: msg.Type})
	if err != nil {
		panic(err)
	}
	fmt.Println("script:", got.ScriptName, "deadline:", got.Deadline.Format(time.TimeOnly))
	fmt.Println("run time if started after 2 s:", got.RunTime(accepted.Add(2*time.Second)))

	// Its reply, and the gateway's parse of it.
	rep := contract.Failed(got, contract.CodeScriptTimeout, "the script ran out of time")
	rep.WorkerID = "worker-1"
	rmsg, _ := rep.Publishing(accepted.Add(3 * time.Second))
	parsed, err := contract.ParseReply(amqp.Delivery{Body: rmsg.Body, CorrelationId: rmsg.CorrelationId})
	if err != nil {
		panic(err)
	}
	fmt.Println("reply:", parsed.Status, parsed.Error.Code)
	// Output:
	// type: scrape.request.v1 correlation_id: req-1 reply_to: amq.rabbitmq.reply-to
	// expiration (ms): 4500
	// script: example_scraper deadline: 06:00:04
	// run time if started after 2 s: 2.25s
	// reply: timeout script_timeout
}
