package task

import "time"

// UnknownScript is the script label of requests whose script could not be resolved, so that names sent by
// callers cannot blow up the metrics' cardinality.
const UnknownScript = "(unknown)"

// Reasons a task was not run, for Metrics.TaskRejected.
const (
	// RejectedInvalid: the task could not be parsed or failed validation; it was dead-lettered.
	RejectedInvalid = "invalid"
	// RejectedExpired: the caller's deadline passed before the task could start; it was dead-lettered.
	RejectedExpired = "expired"
	// RejectedRequeued: the worker was shutting down (or a job's store was unavailable at its start); the
	// task went back to the queue.
	RejectedRequeued = "requeued"
	// RejectedParked: every slot was busy with leased jobs for as long as a delivery may be held; the task
	// was parked in the lease queue and comes back after a lease period.
	RejectedParked = "parked"
)

// RejectReasons lists every reason Metrics.TaskRejected is called with.
var RejectReasons = []string{RejectedInvalid, RejectedExpired, RejectedRequeued, RejectedParked}

// Metrics records the handler's work. The worker's edge implements it with Prometheus (the telemetry
// package); Config.Metrics nil records nothing.
type Metrics interface {
	// TaskDone counts a task answered with status (completed, failed, timeout) and how long it took from
	// receipt to reply; script is UnknownScript when the script could not be resolved.
	TaskDone(script, client, status string, d time.Duration)
	// ScriptRan records how long a script's run took.
	ScriptRan(script string, d time.Duration)
	// TaskRejected counts a task not run, for one of RejectReasons.
	TaskRejected(reason string)
	// Slots reports the number of script slots, once at the start.
	Slots(n int)
	// SlotTaken and SlotFreed count a slot taken by a task and given back.
	SlotTaken()
	SlotFreed()
}

// nopMetrics records nothing: the Metrics of a Config without one.
type nopMetrics struct{}

func (nopMetrics) TaskDone(string, string, string, time.Duration) {}
func (nopMetrics) ScriptRan(string, time.Duration)                {}
func (nopMetrics) TaskRejected(string)                            {}
func (nopMetrics) Slots(int)                                      {}
func (nopMetrics) SlotTaken()                                     {}
func (nopMetrics) SlotFreed()                                     {}
