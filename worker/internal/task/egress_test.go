package task

import (
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/worker/internal/runner"
)

// refusals is an EgressRefusals that knows one sentence.
type refusals struct{ script, requestID, sentence string }

func (r refusals) Refusal(script, requestID string, _ time.Time) (string, bool) {
	return r.sentence, script == r.script && requestID == r.requestID
}

func TestEgressRefusalJoinsAFailedRunsError(t *testing.T) {
	t.Parallel()
	sentence := "egress proxy refused 127.0.0.1:8765: 127.0.0.1 is a loopback address; to allow it, run the worker with EGRESS_ALLOW=127.0.0.1:8765"
	w := &Handler{cfg: Config{Egress: refusals{"fetch", "req-1", sentence}}}
	req := &contract.Request{RequestID: "req-1", ScriptName: "fetch"}
	failed := func(msg string) runner.Result {
		return runner.Result{Status: contract.StatusFailed, Err: &contract.Error{Code: contract.CodeScriptError, Message: msg}}
	}
	tests := []struct {
		name string
		req  *contract.Request
		res  runner.Result
		want bool
	}{
		{"failed, the script's error hides the reason", req, failed("ValueError: could not fetch the page"), true},
		{"failed, the script's error says it already", req, failed("HTTP Error 403: Forbidden: " + sentence), false},
		{"completed", req, runner.Result{Status: contract.StatusCompleted}, false},
		{"another run", &contract.Request{RequestID: "req-2", ScriptName: "fetch"}, failed("ValueError"), false},
	}
	for _, tt := range tests {
		got, ok := w.egressRefusal(tt.req, tt.res, time.Time{})
		if ok != tt.want || (ok && got != sentence) {
			t.Errorf("%s: egressRefusal = %q, %v; want %v", tt.name, got, ok, tt.want)
		}
	}
	if _, ok := (&Handler{}).egressRefusal(req, failed("x"), time.Time{}); ok {
		t.Error("a worker without an egress proxy found a refusal")
	}
}
