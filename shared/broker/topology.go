package broker

import (
	"fmt"
	"regexp"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Topology names the task queue and its dead-letter plumbing. Every side declares it with the same
// arguments; RabbitMQ refuses a redeclaration whose arguments differ, so they live here and nowhere else.
type Topology struct {
	// TaskQueue is the quorum queue tasks are published to (RABBITMQ_TASK_QUEUE).
	TaskQueue string
	// DeadLetterExchange receives messages rejected without requeue, expired, or over the delivery limit.
	DeadLetterExchange string
	// DeadLetterQueue is bound to DeadLetterExchange and keeps them for inspection.
	DeadLetterQueue string
	// DeliveryLimit is how often a message may be delivered before it is dead-lettered (poison message).
	DeliveryLimit int
	// DeadLetterTTLMillis bounds how long dead letters are kept (0 = forever).
	DeadLetterTTLMillis int64
	// DeadLetterMaxLength bounds how many dead letters are kept; the oldest are dropped first (0 = unbounded).
	DeadLetterMaxLength int64
	// CancelExchange (fanout) carries job cancel notices (DELETE /jobs/{id}) from the gateway to every
	// worker: each binds a queue of its own and stops the named job if it runs it.
	CancelExchange string
}

// DefaultDeliveryLimit is how often a task may be delivered before it is considered poison.
const DefaultDeliveryLimit = 3

// NewTopology returns the topology for the named task queue with the default dead-letter settings:
// "<queue>.dlx" (fanout) and "<queue>.dead", keeping up to 100,000 dead letters for 7 days.
func NewTopology(taskQueue string) Topology {
	return Topology{
		TaskQueue:           taskQueue,
		DeadLetterExchange:  taskQueue + ".dlx",
		DeadLetterQueue:     taskQueue + ".dead",
		DeliveryLimit:       DefaultDeliveryLimit,
		DeadLetterTTLMillis: 7 * 24 * 3600 * 1000,
		DeadLetterMaxLength: 100_000,
		CancelExchange:      taskQueue + ".cancel",
	}
}

// TaskQueueArgs are the arguments the task queue is declared with.
func (t Topology) TaskQueueArgs() amqp.Table {
	return amqp.Table{
		amqp.QueueTypeArg:        amqp.QueueTypeQuorum,
		"x-dead-letter-exchange": t.DeadLetterExchange,
		"x-delivery-limit":       int64(t.DeliveryLimit),
	}
}

func (t Topology) deadLetterQueueArgs() amqp.Table {
	args := amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}
	if t.DeadLetterTTLMillis > 0 {
		args["x-message-ttl"] = t.DeadLetterTTLMillis
	}
	if t.DeadLetterMaxLength > 0 {
		args["x-max-length"] = t.DeadLetterMaxLength
	}
	return args
}

// Declare declares the dead-letter exchange and queue, their binding, the task queue and the cancel
// exchange on ch.
func (t Topology) Declare(ch *amqp.Channel) error {
	if err := ch.ExchangeDeclare(t.DeadLetterExchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %q: %w", t.DeadLetterExchange, err)
	}
	if _, err := ch.QueueDeclare(t.DeadLetterQueue, true, false, false, false, t.deadLetterQueueArgs()); err != nil {
		return fmt.Errorf("declare queue %q: %w", t.DeadLetterQueue, err)
	}
	if err := ch.QueueBind(t.DeadLetterQueue, "", t.DeadLetterExchange, false, nil); err != nil {
		return fmt.Errorf("bind %q to %q: %w", t.DeadLetterQueue, t.DeadLetterExchange, err)
	}
	if _, err := ch.QueueDeclare(t.TaskQueue, true, false, false, false, t.TaskQueueArgs()); err != nil {
		return fmt.Errorf("declare queue %q: %w", t.TaskQueue, err)
	}
	if t.CancelExchange != "" {
		if err := ch.ExchangeDeclare(t.CancelExchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %q: %w", t.CancelExchange, err)
		}
	}
	return nil
}

// BoundPolicyPriority is the priority of the task queue's bound policy: above Amazon MQ's default policies
// (0 on a single instance, 1 on a cluster), since only the highest-priority policy matching a queue applies.
const BoundPolicyPriority = 10

// BoundPolicy describes the policy that bounds the task queue to maxLength ready messages and has the broker
// refuse publishes past it (reject-publish: the gateway gets a nack and answers 429 queue_full). A policy and
// not a queue argument, since RabbitMQ refuses a redeclaration with other arguments. The queue-depth Lambda
// keeps it on Amazon MQ; the local stack sets it on a broker it starts.
func (t Topology) BoundPolicy(maxLength int64) (name, pattern string, definition map[string]any) {
	return t.TaskQueue + "-bound", "^" + regexp.QuoteMeta(t.TaskQueue) + "$",
		map[string]any{"max-length": maxLength, "overflow": "reject-publish"}
}
