package job

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Leases of long jobs (see shared/broker's lease.go): a worker that runs a job longer than the broker lets
// it hold a delivery records, and renews, how long its hold on the job lasts, in jobs/<request_id>/lease.json.
// Like webhook.json it has one writer at a time (the worker running the job) and is rewritten whole; a
// worker that finds a lease copy of a running job back in the task queue reads it to tell a live worker
// (lease_until in the future) from a lost one. It is not part of the Store interface: the worker's own
// smaller interface asks for it, and both implementations have it.

// Lease is a running job's lease.
type Lease struct {
	WorkerID string    `json:"worker_id"`
	Until    time.Time `json:"lease_until"`
}

const eventLease = "lease"

// RenewLease records l as the job's lease, replacing the previous one.
func (e *engine) RenewLease(ctx context.Context, id string, l Lease) error {
	if err := CheckRequestID(id); err != nil {
		return err
	}
	if l.Until.IsZero() {
		return fmt.Errorf("%w: lease of job %s without an end", ErrInvalid, id)
	}
	data, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return e.objs.put(ctx, eventKey(id, eventLease), data)
}

// GetLease returns the job's lease; found is false when none was recorded.
func (e *engine) GetLease(ctx context.Context, id string) (l Lease, found bool, err error) {
	if err := CheckRequestID(id); err != nil {
		return Lease{}, false, err
	}
	data, _, found, err := e.objs.get(ctx, eventKey(id, eventLease))
	if err != nil || !found {
		return Lease{}, false, err
	}
	if err := json.Unmarshal(data, &l); err != nil {
		return Lease{}, false, fmt.Errorf("job %s: decode lease.json: %w", id, err)
	}
	return l, true, nil
}
