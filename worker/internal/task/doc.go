// Package task turns tasks (broker.Task: a parsed delivery) into script runs and settled outcomes.
//
// For each task the Handler computes one outcome and settles it once (broker.Task.Settle): an invalid
// request is dead-lettered; work whose time budget has run out (contract.Budget.RunTime) is dead-lettered,
// so operators see capacity shortfalls; otherwise the script is resolved and run in a child process for at
// most the budget's run time, and the reply is published with a confirm before the ack. A reply that cannot
// be published is retried until the caller's deadline (a broker alarm or a redial passes), then dropped and
// the task acked: nobody is waiting. A run cut short by a forced shutdown is requeued for
// another worker. Requeues are bounded by the task queue's delivery limit, so a task that always kills its
// worker ends in the dead-letter queue.
//
// Files: handler.go (Handler: slots, Handle, Shutdown, the outcome of one task), run.go (resolving,
// environment, per-script caps and the run itself), layout.go (what a script folder holds besides
// scraper.py), settle.go (reply, dead-letter, requeue), metrics.go (the Metrics the handler records
// into), jobs.go (tasks that carry a job: the job store, the claim check, cancels, leases of long jobs,
// parking).
//
// Handler.Shutdown(ctx) is the handler's part of the worker's ordered shutdown (cmd/worker's run): new tasks
// are requeued at once; running ones may finish until ctx ends; then their scripts are stopped (the runner
// kills their process groups) and their tasks requeued, within Config.StopGrace.
package task
