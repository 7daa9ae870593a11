package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/local/stack"
	"github.com/scrapeplatform/platform/shared/proctest"
)

// TestWorkerDrainsOnSIGTERM: a worker that gets SIGTERM while a script runs finishes it (within the drain
// timeout), replies, and exits cleanly.
func TestWorkerDrainsOnSIGTERM(t *testing.T) {
	e := start(t, 1)
	w := e.stack.Processes()[1]
	var r response
	done := make(chan struct{})
	// The script runs until the test creates release (at the latest 20 s), so it is still running whatever
	// the machine's speed when the worker starts draining.
	release := filepath.Join(t.TempDir(), "release")
	go func() {
		r = e.scrape(t, "sleeper", map[string]any{"seconds": 20, "until_file": release}, maxTimeout)
		close(done)
	}()
	e.out.WaitLine(t, 10*time.Second, `"msg":"task started"`, `"script":"sleeper"`)
	if err := w.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	e.out.WaitLine(t, 10*time.Second, `"msg":"shutting down: draining running scripts"`)
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	<-done
	if r.Code != 200 || r.Body["status"] != "completed" {
		t.Fatalf("scrape during drain: %d %s", r.Code, r.Raw)
	}
	if data, _ := r.Body["data"].(map[string]any); data["released"] != true {
		t.Fatalf("the script was not released by the test but ran out its 20 s: %s", r.Raw)
	}
	select {
	case <-w.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not exit after draining")
	}
	if err := w.ExitErr(); err != nil {
		t.Fatalf("worker exit: %v", err)
	}
}

// TestUnfinishedWorkIsRequeued: a worker whose drain timeout runs out kills its script and requeues the
// task; another worker picks it up and the caller still gets its answer. Nothing is lost.
func TestUnfinishedWorkIsRequeued(t *testing.T) {
	e := start(t, 1, "WORKER_DRAIN_TIMEOUT=500ms")
	first := e.stack.Processes()[1]
	var r response
	done := make(chan struct{})
	go func() { r = e.scrape(t, "sleeper", map[string]any{"seconds": 3}, 15); close(done) }()
	e.out.WaitLine(t, 10*time.Second, `"msg":"task started"`, `"script":"sleeper"`)
	if err := first.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("first worker did not exit")
	}
	// A replacement worker takes the requeued task.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env := append(append([]string{}, e.baseEnv...), "WORKER_ID=replacement", fmt.Sprintf("WORKER_METRICS_ADDR=%s", proctest.FreeAddr(t)))
	p, err := stack.StartProcess(ctx, "replacement", filepath.Join(binDir, "worker"), nil, env, e.out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(30 * time.Second) })
	<-done
	if r.Code != 200 || r.Body["status"] != "completed" || r.Body["worker_id"] != "replacement" {
		t.Fatalf("requeued scrape: %d %s", r.Code, r.Raw)
	}
}
