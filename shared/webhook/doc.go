// Package webhook signs, verifies and delivers webhooks per Standard Webhooks 1.0
// (https://www.standardwebhooks.com, spec/standard-webhooks.md), with durable retries.
//
// # Signing
//
// A delivery is an HTTP POST whose body is the payload, with three headers:
//
//	webhook-id:        the message id; the same for every attempt of one event, so receivers can dedupe
//	webhook-timestamp: the attempt's time, Unix seconds
//	webhook-signature: "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body))
//
// The signature header is a space-separated list: during a key rotation [Sign] signs with the new key and
// with the old ones, and a receiver accepts the delivery when any v1 signature matches one of its keys.
// Secrets are serialised as "whsec_" + base64(key) ([Secret.Encode]; String redacts it), the key 24 to 64
// random bytes ([NewSecret] makes 32).
//
// # Verifying
//
// [Verify] is what a receiver runs: it checks that the three headers are present and well formed, that the
// timestamp is within [Tolerance] (5 minutes) of the receiver's clock (replay protection), and compares
// signatures in constant time (hmac.Equal). Unknown signature versions (for instance "v1a", the spec's
// asymmetric scheme) are skipped, not errors. It is tested against the spec's reference vector and fuzzed
// (FuzzVerify) on the header parsing, the part that sees untrusted input.
//
// # Retrying
//
// A delivery succeeds on any 2xx answer; anything else (another status, a redirect, a timeout, a refused
// connection) is retried per a [Schedule]: a few explicit first delays (1 s, 5 s, 30 s, 2 min), then
// exponential growth up to a cap, each delay scaled by a random jitter, until the next attempt would start
// later than the schedule's Total (24 h by default) after the first one. [Schedule.Base] gives the delay
// levels without jitter, which is what a durable retry built on broker delay queues (one per level) needs.
//
// # Delivering
//
// [Outbox] enqueues the delivery of a finished job with a callback_url: one persistent message on
// <task>.webhooks carrying the signed body to be ([Payload]: the job without owner and delivery state). The
// worker's [Deliverer] consumes that queue with a bounded number of deliveries in flight, POSTs through an
// HTTP client whose every connection passes an address check after DNS resolution (the SSRF guard) and
// that follows no redirect, and settles each message: delivered; or a retry published to the delay queue
// of its level ([Queues]: classic queues with a TTL, dead-lettering back to <task>.webhooks; the jitter
// only shortens a delay, as a per-message expiration below the queue's TTL); or, past the maximum age or
// for a refused address, a dead letter on <task>.webhooks.dead. The next step is confirmed by the broker
// before the message it replaces is acked, so a retry survives any restart and delivery is at least
// once. Every outcome is recorded in the job store ([Store].SetWebhook) and counted ([Metrics]).
// [LoadConfig] reads the WEBHOOK_* settings.
package webhook
