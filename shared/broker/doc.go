// Package broker is the project's AMQP layer on github.com/rabbitmq/amqp091-go.
//
// Every long-lived AMQP user holds a [Session]: one connection and one channel that a supervisor goroutine
// dials, sets up (topology, confirms, consumers) and, when the broker or the network drops them, redials with
// capped exponential backoff and sets up again. Code that needs the channel asks the session for it and gets
// [ErrUnavailable] rather than a hang when none comes up in time.
//
// On top of sessions sit:
//
//   - [Topology]: the task queue (a durable quorum queue with a delivery limit), its dead-letter exchange and
//     dead-letter queue, declared identically by every side so declarations never conflict.
//   - [RPCClient]: the gateway's side of an RPC over direct reply-to. Call takes a *contract.Request and
//     returns its *contract.Reply: amqp091 types stay inside this package and contract's AMQP mapping. Publishes are persistent, mandatory and
//     confirmed; many calls share one channel, each waiting only for its own confirm (a window of in-flight
//     publishes bounds them). Replies are matched by correlation id; unknown and late replies are dropped and
//     counted; no call waits past its context's deadline. While the broker blocks publishers (a memory or
//     disk alarm, connection.blocked) calls fail at once with ErrBlocked, and a reject-publish overflow
//     (the queue over a max-length policy) comes back as ErrNacked.
//   - [Consumer]: the worker's side: prefetch, manual acks, consumption that resumes after a reconnect, and a
//     stop that cancels consumption while leaving the channel open so in-flight work can still be settled.
//     It hands each delivery over as a [Task] (the parsed request, or why it is invalid), settled once by
//     [Task.Settle] with an [Outcome]: the reply (retried until the caller's deadline), then ack, requeue or
//     dead-letter with a reason.
//   - [Publisher]: confirmed publishes on a session of their own (the worker publishes replies on a
//     connection separate from the one it consumes on, as RabbitMQ advises).
//   - [CancelListener] (cancel.go): the worker's own exclusive, auto-delete queue on the topology's cancel
//     exchange, redeclared on every reconnect; it hands each job cancel notice (RPCClient.NotifyCancel) to
//     a callback.
//   - [Leaser] (lease.go): lease copies of long jobs' tasks in "<task queue>.lease", a queue without
//     consumers whose messages expire after the lease period and are dead-lettered back into the task
//     queue; [Task.Release] acks a leased task early and [Task.Reply] still answers it (RabbitMQ's
//     consumer_timeout would otherwise close a channel holding a delivery for more than 30 minutes).
//
// Broker problems are said at once and in words: [CheckLogin] logs in and leaves again, the check every
// binary runs at start (a wrong password fails in milliseconds with the broker's own reason, "403
// ACCESS_REFUSED ..."); a [Session] that cannot come up keeps redialling but logs its reason ([Explain]) once
// per change, not once per attempt, and [Session.Problem] tells it meanwhile (GET /health shows it).
//
// Errors are classified once: each carries its class (contract.Classify: transient or not) and its code
// (contract.CodeOf), from which the worker settles and the gateway picks its HTTP status.
//
// Lifecycle: every long-running part (Session, RPCClient, Publisher, Consumer) runs in Run(ctx) and stops
// when ctx ends; ending ctx interrupts every wait (redial backoff, reply retries, calls waiting for a
// channel). Consumer.Shutdown(ctx) then closes the channel it kept open for settling, as the worker's other
// long-running parts stop with Shutdown(ctx). A nil Logger in any config
// discards.
package broker
