package contract

// Code is a stable, machine-readable error code. Codes are part of the public API: add new ones, never
// rename or reuse one.
type Code string

// Codes a reply or an HTTP error can carry.
const (
	// CodeInvalidRequest: the request is malformed or fails validation.
	CodeInvalidRequest Code = "invalid_request"
	// CodeUnauthorized: no credentials, or credentials that do not verify.
	CodeUnauthorized Code = "unauthorized"
	// CodePayloadTooLarge: the request body is larger than the gateway accepts.
	CodePayloadTooLarge Code = "payload_too_large"
	// CodeRequestTimeout: the request body did not arrive within the server's read timeout (408).
	CodeRequestTimeout Code = "request_timeout"
	// CodeServerBusy: the local gateway is at its connection cap (GATEWAY_MAX_CONNECTIONS) and refused the
	// connection with 503 before reading a request; retry shortly.
	CodeServerBusy Code = "server_busy"
	// CodeNotFound: no such HTTP route.
	CodeNotFound Code = "not_found"
	// CodeMethodNotAllowed: the route exists but not for this HTTP method.
	CodeMethodNotAllowed Code = "method_not_allowed"
	// CodeUnsupportedMediaType: the body is not JSON. Reserved: the gateway accepts any Content-Type and
	// reports a body that is not JSON as invalid_request (400); a strict Content-Type check would use it.
	CodeUnsupportedMediaType Code = "unsupported_media_type"
	// CodeBrokerUnavailable: the gateway cannot hand the task to the broker.
	CodeBrokerUnavailable Code = "broker_unavailable"
	// CodeNoWorkerResponse: no worker answered before the request's deadline.
	CodeNoWorkerResponse Code = "no_worker_response"
	// CodeQueueFull: the task queue is over its bound (a max-length policy with reject-publish); retry later.
	CodeQueueFull Code = "queue_full"
	// CodeForbidden: the token is valid but grants none of the scopes the route requires.
	CodeForbidden Code = "forbidden"
	// CodeAuthUnavailable: the identity provider's signing keys (JWKS) cannot be fetched, so the token cannot
	// be checked now; retry later.
	CodeAuthUnavailable Code = "auth_unavailable"

	// CodeScriptNotFound: the script repository has no script of that name.
	CodeScriptNotFound Code = "script_not_found"
	// CodeScriptError: the script raised an exception.
	CodeScriptError Code = "script_error"
	// CodeScriptTimeout: the script did not finish within its timeout and was killed.
	CodeScriptTimeout Code = "script_timeout"
	// CodeScriptCrashed: the script's process died without producing a result (killed, out of memory, exit).
	CodeScriptCrashed Code = "script_crashed"
	// CodeInvalidOutput: the script returned something that is not JSON-serialisable.
	CodeInvalidOutput Code = "invalid_output"
	// CodeOutputTooLarge: the script's result is larger than the worker may send back.
	CodeOutputTooLarge Code = "output_too_large"
	// CodeEventLoopBlocked: an async script blocked its shared runner's event loop (time.sleep, a CPU-bound
	// loop or a blocking call inside async def) for longer than the worker allows (WARM_LOOP_LAG_LIMIT); the
	// runner was stopped and every call it was serving failed with this code.
	CodeEventLoopBlocked Code = "event_loop_blocked"
	// CodeDependencyInstallFailed: the script's requirements could not be installed.
	CodeDependencyInstallFailed Code = "dependency_install_failed"
	// CodeDependenciesInstalling: the script's requirements are still being installed; retry shortly.
	CodeDependenciesInstalling Code = "dependencies_installing"
	// CodeInvalidManifest: the script's manifest.json is malformed or out of range.
	CodeInvalidManifest Code = "invalid_manifest"
	// CodeDeadlineExceeded: the request's deadline passed before it could be handed on (contract.ErrExpired):
	// the gateway answers it (504) when its invocation has no time left to publish the task. A worker that
	// finds a task expired dead-letters it without a reply: nobody waits for one.
	CodeDeadlineExceeded Code = "deadline_exceeded"
	// CodeWorkerShuttingDown: the worker stopped before the script finished and could not hand it on.
	// Reserved: a worker that stops requeues its unfinished tasks (the broker redelivers them, bounded by the
	// queue's delivery limit), so no reply carries it today; a worker that cannot requeue would.
	CodeWorkerShuttingDown Code = "worker_shutting_down"
	// CodeCancelled: the job's owner cancelled it (DELETE /jobs/{id}); its status is cancelled.
	CodeCancelled Code = "cancelled"
	// CodeJobNotFound: no job with this id belongs to the caller (unknown, another client's, or older than
	// the retention: the three are indistinguishable on purpose).
	CodeJobNotFound Code = "job_not_found"
	// CodeJobStoreUnavailable: the job store (S3) cannot be reached, so a job cannot be recorded or read;
	// retry later. A synchronous scrape that finishes within the sync window still works without it.
	CodeJobStoreUnavailable Code = "job_store_unavailable"
	// CodeIdempotencyConflict: the Idempotency-Key was used within 24 h with a different request body.
	CodeIdempotencyConflict Code = "idempotency_conflict"
	// CodeWorkerLost: the worker running a long job stopped answering (its lease ran out) and too little of
	// the job's time was left to run it again elsewhere.
	CodeWorkerLost Code = "worker_lost"
	// CodeInternal: a fault in the platform itself; the message says what.
	CodeInternal Code = "internal_error"
)
