package webhook

import (
	"fmt"
	"slices"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Queues names the broker queues of a task queue's webhooks. Every side declares them with the same
// arguments (RabbitMQ refuses a redeclaration with other ones), so the arguments live here only:
//
//	<task>.webhooks                 durable quorum queue the deliverers consume; a delivery limit, and
//	                                dead-lettering (through the default exchange) to <task>.webhooks.dead
//	<task>.webhooks.delay.<delay>   one classic durable queue per retry delay, without consumers:
//	                                x-message-ttl = the delay, dead-lettering back to <task>.webhooks
//	<task>.webhooks.dead            durable quorum queue of the deliveries that failed for good (retries
//	                                exhausted, a refused address, a malformed message); kept 7 days
//
// A delay queue is named by its delay, so changing the schedule declares new queues instead of
// redeclaring an existing one with another TTL (which the broker would refuse). A retry's message also
// carries a per-message expiration of the jittered delay, at most the queue's TTL: it waits at most the
// queue's delay, and at least (1 - Jitter) of it.
type Queues struct {
	// Main is <task>.webhooks.
	Main string
	// Dead is <task>.webhooks.dead.
	Dead string
}

// Settings of the webhook queues.
const (
	// DeliveryLimit is how often one message may be delivered to a deliverer before it is dead-lettered
	// as poison (a deliverer that dies while holding it, again and again). A retry is a new message, so
	// failed HTTP attempts do not count.
	DeliveryLimit = 10
	// DeadTTL is how long dead webhook deliveries are kept for inspection.
	DeadTTL = 7 * 24 * time.Hour
	// DeadMaxLength bounds how many are kept; the oldest go first.
	DeadMaxLength = 100_000
)

// NewQueues returns the webhook queue names of taskQueue.
func NewQueues(taskQueue string) Queues {
	return Queues{Main: taskQueue + ".webhooks", Dead: taskQueue + ".webhooks.dead"}
}

// Delay names the delay queue of delay d.
func (q Queues) Delay(d time.Duration) string { return q.Main + ".delay." + FormatDelay(d) }

// FormatDelay writes d compactly for a queue name: 1s, 30s, 2m, 2h8m, 250ms (time.Duration.String without
// the trailing zero units).
func FormatDelay(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (q Queues) mainArgs() amqp.Table {
	return amqp.Table{
		amqp.QueueTypeArg:           amqp.QueueTypeQuorum,
		"x-delivery-limit":          int64(DeliveryLimit),
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": q.Dead,
	}
}

func (q Queues) deadArgs() amqp.Table {
	return amqp.Table{
		amqp.QueueTypeArg: amqp.QueueTypeQuorum,
		"x-message-ttl":   DeadTTL.Milliseconds(),
		"x-max-length":    int64(DeadMaxLength),
	}
}

func (q Queues) delayArgs(d time.Duration) amqp.Table {
	return amqp.Table{
		amqp.QueueTypeArg:           amqp.QueueTypeClassic,
		"x-message-ttl":             d.Milliseconds(),
		"x-dead-letter-exchange":    "",
		"x-dead-letter-routing-key": q.Main,
	}
}

// Declare declares the main and the dead queue on ch (idempotent).
func (q Queues) Declare(ch *amqp.Channel) error {
	if _, err := ch.QueueDeclare(q.Dead, true, false, false, false, q.deadArgs()); err != nil {
		return fmt.Errorf("declare queue %q: %w", q.Dead, err)
	}
	if _, err := ch.QueueDeclare(q.Main, true, false, false, false, q.mainArgs()); err != nil {
		return fmt.Errorf("declare queue %q: %w", q.Main, err)
	}
	return nil
}

// DeclareDelay declares the delay queue of d on ch (idempotent).
func (q Queues) DeclareDelay(ch *amqp.Channel, d time.Duration) error {
	if _, err := ch.QueueDeclare(q.Delay(d), true, false, false, false, q.delayArgs(d)); err != nil {
		return fmt.Errorf("declare queue %q: %w", q.Delay(d), err)
	}
	return nil
}

// DelayLevels lists the distinct delays (without jitter) of s's retries: the delay queues a deliverer
// declares up front. A retry past the plan (jitter made the earlier ones shorter) declares its queue as it
// goes.
func (s Schedule) DelayLevels() []time.Duration {
	var levels []time.Duration
	for _, d := range s.Plan() {
		if !slices.Contains(levels, d) {
			levels = append(levels, d)
		}
	}
	return levels
}
