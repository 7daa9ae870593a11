// Package gateway is the platform's HTTP API as one plain net/http handler: POST /scrape, GET /health and
// GET /status (routes, decoding, validation, error mapping) and nothing else. The same handler runs in AWS
// Lambda behind API Gateway (cmd/gateway with the lambdaedge package: API Gateway's authorizers, EMF
// metrics) and locally as an ordinary HTTP server (cmd/gateway-local with the localedge package: bearer
// JWTs verified here, Prometheus). The edges plug in through Authenticator and Recorder.
//
// POST /scrape validates the body, turns it into a contract.Request whose time budget (contract.NewBudget:
// the timeout plus Config.ReplyGrace, never past the invocation's own deadline) owns every deadline, and
// makes an RPC over RabbitMQ. A failed call is answered from its classification (contract.CodeOf, else its
// class) through one table, httpStatus. Answers:
//
//	200  the scrape ran: status completed, failed or timeout (error and error_code say why)
//	400  the body is not valid JSON, or has unknown fields or wrong types
//	401  no credentials, or credentials that do not verify
//	413  the body is larger than SCRAPE_MAX_BODY_BYTES
//	422  valid JSON that breaks a rule (script_name, parameters, timeout)
//	429  the task queue is full (queue_full)
//	503  the broker is unreachable or blocked (broker_unavailable)
//	504  no worker answered before the deadline (no_worker_response), or no time was left to hand the task
//	     on (deadline_exceeded)
//
// Every error body is JSON: {"error": sentence, "error_code": stable code, "request_id": ...}.
package gateway
