// Package job keeps scrape jobs: their state, shared by every gateway instance and the workers and
// surviving restarts, their large results (the claim check), and the clients' idempotency keys. The
// production store is S3 (AWS) or any S3-compatible server (versitygw locally and in tests); Memory runs the
// same logic over a map for unit tests of the packages that use a Store.
//
// # Object layout
//
// Under the configured prefix (JOB_STORE_PREFIX, default none):
//
//	jobs/<request_id>/queued.json   the gateway, at accept (If-None-Match: *, so a request id is used once)
//	jobs/<request_id>/running.json  the worker, as it starts the script (with worker_id, started_at)
//	jobs/<request_id>/final.json    whoever ends the job first: the worker (completed, failed, timeout) or
//	                                a cancel (cancelled); If-None-Match: * makes exactly one final state win
//	jobs/<request_id>/cancel.json   the cancel request marker (the worker's backstop to the broker notice)
//	jobs/<request_id>/webhook.json  the callback's delivery state, rewritten by its only writer
//	results/<request_id>.json       a result too large to travel inline, written by the worker
//	idempotency/<sha256>.json       {request_id, body_sha256, created_at} of sha256(owner + "\x00" + key)
//
// Every job object holds the whole job document as of its event, and no object is ever read, modified and
// written back: events are separate objects, and the two decisions that must be unique (the final state,
// an idempotency key's request) are conditional creates. So there are no read-modify-write races, and a
// completion that loses to a cancel learns it from Finish (won is false) and leaves the job cancelled; a
// finished job stays as it finished; a repeated cancel changes nothing.
//
// # Reading a job
//
// Get reads final.json, else running.json, else queued.json: one request for a finished job, two for a
// running one, three for a queued one (plus webhook.json for a finished job with a callback). The
// alternative, one LIST of jobs/<request_id>/ then one GET, always takes two. BenchmarkGet measured both on
// versitygw (2-core machine under load, 2026-12-05): finished ≈ 0.95 ms by the cascade against ≈ 2.6 ms by
// LIST; running and queued within noise of each other (2.5–4.9 ms either way). At S3 Standard request
// prices a LIST costs as much as about twelve GETs, and a 404 is billed as a GET, so the cascade is the
// cheaper read in every state, and the faster one for the state most reads see (a finished job).
//
// # Ownership, retention, idempotency
//
// A job belongs to its owner (the token's subject or client id): Get and Cancel answer ErrNotFound for
// another owner's job, exactly as for an unknown id, so nobody learns that it exists. A job older than
// JOB_RETENTION (default 7 days) is not found either; in AWS a lifecycle rule on jobs/ and results/
// deletes the objects after Config.RetentionDays, and one on idempotency/ after 2 days.
//
// Claim binds an Idempotency-Key to the first request that used it: created with If-None-Match: *, so
// racing requests on different gateway instances agree on one request id; the same key with another
// body is ErrIdempotencyConflict; an entry older than IdempotencyWindow (24 h) is taken over by a
// conditional replace (If-Match on its ETag), so a stale key is reused exactly once too.
//
// # Errors
//
// A store that does not answer, answers 5xx or throttles gives errors wrapped with contract.Transiently
// (the gateway answers 503 with Retry-After); the SDK retries three times within about two seconds first.
// ErrNotFound, ErrExists, ErrFinished (FinishedError carries the final job), ErrIdempotencyConflict and
// ErrInvalid are the store's own answers.
package job
