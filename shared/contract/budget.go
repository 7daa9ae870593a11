package contract

import "time"

// Named margins of the time budget. Each is defined here and nowhere else; code that needs one derives it
// from a [Budget] method rather than subtracting it itself.
const (
	// ReplyMargin is kept free at the end of a budget's deadline by the worker so its reply can still reach
	// the caller: a script's run time, and every wait before it starts, end this long before the deadline.
	ReplyMargin = 250 * time.Millisecond
	// InvocationMargin is kept free before the hard stop of the gateway's own invocation (a Lambda
	// function's deadline): the gateway stops waiting this long before it, so it can still answer 504
	// instead of being cut off without an answer.
	InvocationMargin = 200 * time.Millisecond
	// DefaultReplyGrace is the gateway's default reply grace (SCRAPE_REPLY_GRACE): time added to a request's
	// timeout for queueing, start-up and the reply's way back. It is configurable because it depends on the
	// deployment (how long a task may wait for a free worker); the gateway passes it to [NewBudget].
	DefaultReplyGrace = 1500 * time.Millisecond
)

// Budget is a request's time budget: computed once, by the gateway, when it accepts the request, and
// carried in the request (its fields are the request's "accepted_at", "timeout" and "deadline"). Every
// deadline on the request's path derives from it through a method:
//
//	gateway wait            Budget.WaitUntil      (the context deadline of the RPC call)
//	message expiration      Budget.Expiration     (the AMQP expiration, see Request.Publishing)
//	worker start check      Budget.RunTime > 0    (else the task is dead-lettered as expired)
//	script run time         Budget.RunTime        (the runner's kill time)
//	waits before the run    Budget.StartBy        (environment build, per-script slot)
//	reply retries           Budget.Deadline       (a reply is retried until then)
//
// Extending it (issue 10: a synchronous window and long jobs) is one more field and the methods that read
// it, not edits at every call site: a SyncUntil field, say, makes WaitUntil return min(Deadline, SyncUntil)
// so the gateway answers 202 at the end of the window while the message expiration and the worker's run
// time still follow Deadline; a queue allowance would be a field that Expiration adds.
type Budget struct {
	// Accepted is when the gateway accepted the request (its clock).
	Accepted time.Time `json:"accepted_at,omitzero"`
	// Timeout bounds the script's own run time.
	Timeout Seconds `json:"timeout"`
	// Deadline is when the caller stops waiting; work that cannot finish by then is not started. For a job
	// (NewJobBudget) it includes the time the job may wait in the queue.
	Deadline time.Time `json:"deadline"`
	// SyncUntil, when set, is the end of the gateway's synchronous window (SCRAPE_SYNC_WAIT, Prefer: wait):
	// the gateway stops waiting then and answers 202 while the job goes on until Deadline. It is the
	// gateway's own and does not travel.
	SyncUntil time.Time `json:"-"`
}

// NewBudget computes the budget of a request accepted at accepted with the given script timeout. Its
// deadline is accepted+timeout+grace (grace: the gateway's reply grace, see DefaultReplyGrace), or
// InvocationMargin before hardStop when that comes first. hardStop is the deadline of the gateway's own
// invocation (Lambda's), zero when it has none.
func NewBudget(accepted time.Time, timeout, grace time.Duration, hardStop time.Time) Budget {
	deadline := accepted.Add(timeout + grace)
	if !hardStop.IsZero() {
		if stop := hardStop.Add(-InvocationMargin); stop.Before(deadline) {
			deadline = stop
		}
	}
	return Budget{Accepted: accepted, Timeout: SecondsOf(timeout), Deadline: deadline}
}

// NewJobBudget computes the budget of a request recorded as a job (it outlives the gateway's wait): the
// task may wait up to queueWait for a worker and still run its whole timeout, so its deadline is
// accepted+queueWait+timeout+grace; the gateway waits for the reply until SyncUntil, which is syncWait
// after accepted, cut by hardStop (less InvocationMargin) and by the deadline. syncWait 0 answers at once
// (Prefer: respond-async).
func NewJobBudget(accepted time.Time, timeout, grace, queueWait, syncWait time.Duration, hardStop time.Time) Budget {
	b := Budget{Accepted: accepted, Timeout: SecondsOf(timeout), Deadline: accepted.Add(queueWait + timeout + grace)}
	b.SyncUntil = accepted.Add(max(syncWait, 0))
	if !hardStop.IsZero() {
		if stop := hardStop.Add(-InvocationMargin); stop.Before(b.SyncUntil) {
			b.SyncUntil = stop
		}
	}
	if b.Deadline.Before(b.SyncUntil) {
		b.SyncUntil = b.Deadline
	}
	return b
}

// WaitUntil is when the gateway stops waiting for the reply: the deadline, or the end of the sync window
// when the request is a job.
func (b Budget) WaitUntil() time.Time {
	if !b.SyncUntil.IsZero() && b.SyncUntil.Before(b.Deadline) {
		return b.SyncUntil
	}
	return b.Deadline
}

// Left is the time left to the deadline at now (negative once it has passed).
func (b Budget) Left(now time.Time) time.Duration { return b.Deadline.Sub(now) }

// Expiration is the AMQP expiration of the message published at now: the time left to the deadline,
// rounded up to a whole millisecond so the message never expires before it. It fails with ErrExpired once
// the deadline has passed.
func (b Budget) Expiration(now time.Time) (time.Duration, error) {
	left := b.Left(now)
	if left <= 0 {
		return 0, ErrExpired
	}
	return (left + time.Millisecond - 1) / time.Millisecond * time.Millisecond, nil
}

// StartBy is when the script must have started, at the latest: waits before the run (a dependency build,
// a per-script slot) end then, leaving ReplyMargin for the reply.
func (b Budget) StartBy() time.Time { return b.Deadline.Add(-ReplyMargin) }

// RunTime is how long the script may run if it starts at now: its timeout, cut so that it ends ReplyMargin
// before the deadline. Zero or less means there is no time left to start it.
func (b Budget) RunTime(now time.Time) time.Duration {
	return min(b.Timeout.Duration(), b.StartBy().Sub(now))
}
