package task

import (
	"log/slog"
	"time"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/contract"
)

// respond records the task's metrics, then settles it: the reply goes out (retried until the caller's
// deadline, see broker.Task.Settle) and the task is acked.
func (h *Handler) respond(log *slog.Logger, t *broker.Task, reply *contract.Reply, received time.Time) {
	label := t.Request.ScriptName
	if reply.Error != nil && reply.Error.Code == contract.CodeScriptNotFound {
		label = UnknownScript
	}
	elapsed := h.cfg.Now().Sub(received)
	h.cfg.Metrics.TaskDone(label, clientOf(t.Request), string(reply.Status), elapsed)
	if err := t.Settle(h.hardCtx, broker.Outcome{Reply: reply, Action: broker.Ack, Logger: log}); err != nil {
		// Nobody waits any more: running the script again elsewhere would only produce another reply that
		// nobody reads, so the task is acked, not requeued.
		log.Error("reply not published before the caller's deadline; dropping it", "error", err)
	}
	attrs := []any{"status", reply.Status, "duration_ms", elapsed.Milliseconds(), "execution_time_ms", int64(reply.ExecutionTime * 1000)}
	if reply.Error != nil {
		attrs = append(attrs, "error_code", reply.Error.Code, "error", reply.Error.Message)
	}
	log.Info("task done", attrs...)
}

// reject answers an invalid task (when it says where to) and dead-letters it.
func (h *Handler) reject(t *broker.Task) {
	h.log.Warn("invalid task; dead-lettering it", "error", t.Invalid, "message_id", t.MessageID, "correlation_id", t.CorrelationID)
	h.cfg.Metrics.TaskRejected(RejectedInvalid)
	o := broker.Outcome{Action: broker.DeadLetter, Reason: "invalid: " + t.Invalid.Error()}
	if t.CanReply() {
		o.Reply = contract.Failed(&contract.Request{RequestID: t.CorrelationID}, contract.CodeInvalidRequest, "invalid task: "+t.Invalid.Error())
		o.Reply.Version = contract.Version
		o.Reply.WorkerID = h.cfg.ID
	}
	_ = t.Settle(h.hardCtx, o)
}

// requeue hands t back to the queue for another worker.
func (h *Handler) requeue(log *slog.Logger, t *broker.Task, why string) {
	h.cfg.Metrics.TaskRejected(RejectedRequeued)
	_ = t.Settle(h.hardCtx, broker.Outcome{Action: broker.Requeue, Reason: why, Logger: log})
}

// clientOf is the client a task is counted for (scraping_requests_total's client_id): the job's owner,
// else the authenticated subject.
func clientOf(req *contract.Request) string {
	if req == nil {
		return ""
	}
	if req.Job != nil {
		return req.Job.Owner
	}
	return req.Subject
}
