// Package gateway is the platform's HTTP API as one plain net/http handler: POST /scrape, GET /health and
// GET /status. The same handler runs in AWS Lambda behind API Gateway (through aws-lambda-go-api-proxy's
// httpadapter) and locally as an ordinary HTTP server.
//
// POST /scrape validates the body, turns it into a contract.Request with a deadline of timeout plus a
// grace period for the round trip, and makes an RPC over RabbitMQ. Answers:
//
//	200  the scrape ran: status completed, failed or timeout (error and error_code say why)
//	400  the body is not valid JSON, or has unknown fields or wrong types
//	401  no credentials, or credentials that do not verify
//	413  the body is larger than SCRAPE_MAX_BODY_BYTES
//	422  valid JSON that breaks a rule (script_name, parameters, timeout)
//	503  the broker is unreachable or refused the task
//	504  no worker answered before the deadline
//
// Every error body is JSON: {"error": sentence, "error_code": stable code, "request_id": ...}.
package gateway
