package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
)

// TestJobResultLimit: Job.MaxResultBytes gives one run a larger result limit than the Runner's (a job's
// result is claim-checked), cold, on a one-call warm runner and on a shared one, while the other runs of
// the same script keep the configured limit — warm runners are kept per limit.
func TestJobResultLimit(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, func(c *Config) { c.MaxResultBytes = 64 << 10 })
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) }) // not t.Context(): it is cancelled before cleanups run
	const size = 3 << 20
	for _, mode := range []struct {
		name string
		warm bool
	}{{"cold", false}, {"warm", true}} {
		t.Run(mode.name, func(t *testing.T) {
			for _, round := range []int{1, 2} { // the second round reuses the warm runners
				big := job(t, "huge_result", fmt.Sprintf(`{"bytes": %d}`, size), 30*time.Second)
				big.Warm, big.MaxResultBytes = mode.warm, 8<<20
				res := mustRun(t, r, big)
				if res.Status != contract.StatusCompleted || len(res.Data) < size {
					t.Fatalf("round %d: a job's 3 MiB result with an 8 MiB limit: status %s, %d bytes, err %+v", round, res.Status, len(res.Data), res.Err)
				}
				small := job(t, "huge_result", fmt.Sprintf(`{"bytes": %d}`, size), 30*time.Second)
				small.Warm = mode.warm
				res = mustRun(t, r, small)
				if res.Status != contract.StatusFailed || res.Err == nil || res.Err.Code != contract.CodeOutputTooLarge {
					t.Fatalf("round %d: the same result with the configured 64 KiB limit: status %s, err %+v; want output_too_large", round, res.Status, res.Err)
				}
			}
		})
	}
	t.Run("shared", func(t *testing.T) {
		params := fmt.Sprintf(`{"blob": "%s"}`, strings.Repeat("y", size))
		big := job(t, "async_echo", params, 30*time.Second)
		big.Warm, big.MaxResultBytes = true, 8<<20
		if res := mustRun(t, r, big); res.Status != contract.StatusCompleted || len(res.Data) < size {
			t.Fatalf("a job's 3 MiB result from a shared runner: status %s, %d bytes, err %+v", res.Status, len(res.Data), res.Err)
		}
		small := job(t, "async_echo", params, 30*time.Second)
		small.Warm = true
		if res := mustRun(t, r, small); res.Status != contract.StatusFailed || res.Err == nil || res.Err.Code != contract.CodeOutputTooLarge {
			t.Fatalf("the same result with the configured limit: status %s, err %+v; want output_too_large", res.Status, res.Err)
		}
	})
}

// A completed document as runner.py writes it is not copied: Data is the value inside doc, equal to what
// decoding the document gives. Documents with more in them take the decoding path and say the same.
func TestParseResultDoesNotCopy(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{`{"ok":true,"data":{"a":[1,"}"]}}`, `{"ok":true,"data":"x" }`, `{"ok":true,"data":{"a":1},"x":{}}`, `{"ok":true,"data":1}`} {
		b := []byte(doc)
		o, err := parseResult(b, 1<<20)
		if err != nil || o.Status != contract.StatusCompleted {
			t.Fatalf("%s: %+v, %v", doc, o, err)
		}
		var d resultDoc
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bytes.TrimSpace(o.Data), d.Data) {
			t.Errorf("%s: data %s, decoded %s", doc, o.Data, d.Data)
		}
		aliased := &b[len(okPrefix)] == &o.Data[0]
		if fast := !strings.Contains(doc, `"x":`); aliased != fast {
			t.Errorf("%s: data aliases the document: %v, want %v", doc, aliased, fast)
		}
	}
}
