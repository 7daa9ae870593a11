// Package queuedepth measures the task queue and the broker and publishes the numbers as CloudWatch metrics,
// so the worker service can scale on backlog per task.
//
// Amazon MQ for RabbitMQ 4.x publishes no per-queue CloudWatch metrics, so a scheduled Lambda
// (cmd/queuedepth, every minute) asks the broker's management HTTP API instead:
//
//	GET /api/queues/<vhost>/<task queue>   messages_ready, messages_unacknowledged, consumers
//	GET /api/queues/<vhost>/<dead letters> messages
//	GET /api/nodes                         mem_used, mem_limit, mem_alarm, disk_free_alarm per node
//
// and ECS DescribeServices for the worker service's running and desired task counts. From these it derives
//
//	BacklogPerTask = (ready + unacknowledged) / max(1, running tasks)
//
// Ready messages alone are not the backlog here: a worker prefetches as many tasks as it has script slots,
// so messages_ready stays at zero while every slot is busy, and a fleet scaled on ready messages alone
// shrinks while it is saturated. Ready plus unacknowledged is the work in the system; divided by the
// running tasks it is each task's share, which target tracking holds near the stage's target (a fraction
// of WORKER_CONCURRENCY). Running tasks come from ECS rather than from the queue's consumer count, because
// a task that is starting or draining still counts for capacity; the count is read in the same run, so
// the metric needs no metric math and target tracking can use it directly.
//
// With TASK_QUEUE_MAX_LENGTH set, each run also keeps the task queue bounded: it makes sure the policy
// "<task queue>-bound" says max-length TASK_QUEUE_MAX_LENGTH with overflow reject-publish (read, and written
// only when missing or different), so a stalled fleet makes callers get 429 at once instead of piling up.
// A policy rather than queue arguments, because RabbitMQ refuses a redeclaration with different arguments;
// re-applied every minute, because Amazon MQ has no CloudFormation resource for policies and a broker
// replaced or restored from nothing must get its bound back without anyone remembering to.
//
// A failure of one source does not stop the others: what was measured is published, and the run returns
// the joined error so the Lambda's Errors metric (and its alarm) shows it. Missing datapoints make target
// tracking hold still rather than scale on stale numbers.
package queuedepth
