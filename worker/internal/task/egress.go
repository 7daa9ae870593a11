package task

import (
	"strings"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/worker/internal/egress"
	"github.com/scrapeplatform/platform/worker/internal/runner"
)

// EgressRefusals tells why the egress proxy refused a run's requests (egress.Proxy.Refusal).
type EgressRefusals interface {
	Refusal(script, requestID string, since time.Time) (string, bool)
}

var _ EgressRefusals = (*egress.Proxy)(nil)

// egressRefusal returns the egress proxy's sentence about a failed run's last refused request, when the
// script's own error does not already say it.
func (h *Handler) egressRefusal(req *contract.Request, res runner.Result, started time.Time) (string, bool) {
	if h.cfg.Egress == nil || res.Status != contract.StatusFailed || res.Err == nil {
		return "", false
	}
	why, ok := h.cfg.Egress.Refusal(req.ScriptName, req.RequestID, started)
	return why, ok && !strings.Contains(res.Err.Message, why)
}
