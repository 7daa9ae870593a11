// Package contract owns the wire contract between the gateway and the workers: the versioned request and
// reply documents, their validation, the stable error codes, and the single mapping to and from AMQP
// properties.
//
// A scrape travels as one AMQP message on the task queue. Its properties carry
//
//	correlation_id = message_id = request_id
//	reply_to       = amq.rabbitmq.reply-to (direct reply-to of the calling channel)
//	type           = "scrape.request.v1"
//	content_type   = "application/json"
//	timestamp      = publish time
//	expiration     = milliseconds left until the caller's deadline
//	delivery_mode  = persistent
//
// and its body is a [Request] as JSON. The worker answers with a [Reply] on the reply_to address, with the
// same correlation_id. Nothing else in the code base builds AMQP properties for these messages.
//
// A request carries its time budget ([Budget]: accepted_at, timeout, deadline), computed once by the
// gateway with [NewBudget]; the message's expiration, the gateway's wait, the worker's start check and the
// script's run time all derive from it, with the margins ([ReplyMargin], [InvocationMargin]) named once.
// Errors are classified once: [Classify] gives the class (permanent, transient, cancelled) and [CodeOf]
// the stable [Code] an error is reported with.
package contract
