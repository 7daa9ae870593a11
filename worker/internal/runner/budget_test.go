package runner

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
)

func TestEncodeRequestCarriesTheBudget(t *testing.T) {
	t.Parallel()
	params, err := encodeParameters(json.RawMessage(" {\n \"a\": 1 }"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.UnixMilli(1_700_000_000_123)
	doc := encodeRequest(Job{RequestID: "r\"1", Timeout: 2500 * time.Millisecond}, params, deadline)
	var got struct {
		RequestID  string          `json:"request_id"`
		Parameters json.RawMessage `json:"parameters"`
		TimeoutMS  int64           `json:"timeout_ms"`
		DeadlineMS int64           `json:"deadline_ms"`
	}
	if err := json.Unmarshal(doc, &got); err != nil {
		t.Fatalf("%s: %v", doc, err)
	}
	if got.RequestID != `r"1` || string(got.Parameters) != `{"a":1}` || got.TimeoutMS != 2500 || got.DeadlineMS != 1_700_000_000_123 {
		t.Fatalf("request %s", doc)
	}
	if empty, _ := encodeParameters(json.RawMessage("null")); string(empty) != "{}" {
		t.Fatalf("null parameters: %s", empty)
	}
}

// An async script is cancelled by runner.py at its budget: its cleanup runs and the run ends as a timeout,
// cold and warm.
func TestAsyncScriptCancelledAtItsBudget(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := "import asyncio\n\n\nasync def scrape(params):\n    try:\n        await asyncio.sleep(60)\n    finally:\n        print('cleanup ran')\n"
	if err := os.WriteFile(filepath.Join(dir, "scraper.py"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newTestRunner(t, nil)
	for _, warm := range []bool{false, true} {
		j := Job{RequestID: "budget", ScriptName: "sleeps_async", ScriptDir: dir, Timeout: 3 * time.Second, Warm: warm, Version: "v"}
		res := mustRun(t, r, j)
		if res.Status != contract.StatusTimeout || res.Err == nil || res.Err.Code != contract.CodeScriptTimeout ||
			!strings.Contains(res.Err.Message, "coroutine was cancelled") {
			t.Fatalf("warm=%v: %+v %+v", warm, res, res.Err)
		}
		if !strings.Contains(res.OutputTail, "cleanup ran") {
			t.Errorf("warm=%v: the coroutine's finally did not run; output %q", warm, res.OutputTail)
		}
		if !strings.Contains(res.Err.Detail, "scraper.py") {
			t.Errorf("warm=%v: the detail does not say where the coroutine was: %q", warm, res.Err.Detail)
		}
	}
}

// A TimeoutError the script raises itself, well within its budget, stays the script's own error.
func TestAsyncScriptsOwnTimeoutErrorIsAScriptError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	script := "import asyncio\n\n\nasync def scrape(params):\n    await asyncio.wait_for(asyncio.sleep(60), 0.01)\n"
	if err := os.WriteFile(filepath.Join(dir, "scraper.py"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newTestRunner(t, nil)
	res := mustRun(t, r, Job{RequestID: "own-timeout", ScriptName: "own_timeout", ScriptDir: dir, Timeout: 30 * time.Second})
	if res.Status != contract.StatusFailed || res.Err == nil || res.Err.Code != contract.CodeScriptError || !strings.Contains(res.Err.Type, "TimeoutError") {
		t.Fatalf("%+v %+v", res, res.Err)
	}
}
