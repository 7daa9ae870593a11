package task

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/worker/internal/manifest"
	"github.com/scrapeplatform/platform/worker/internal/repository"
	"github.com/scrapeplatform/platform/worker/internal/runner"
)

// dirRepo resolves every name to one folder, whose manifest the test writes.
type dirRepo struct{ dir string }

func (d dirRepo) Describe() string { return "test dir" }
func (d dirRepo) Resolve(_ context.Context, name string) (repository.Script, error) {
	return repository.Script{Name: name, Dir: d.dir, Version: "v1"}, nil
}

func manifestWorker(t *testing.T, manifestJSON string, run func(context.Context, runner.Job) (runner.Result, error)) (*testWorker, *fakePublisher) {
	t.Helper()
	dir := t.TempDir()
	if manifestJSON != "" {
		if err := os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(manifestJSON), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pub := &fakePublisher{}
	w := New(Config{ID: "w", Concurrency: 4, Repository: dirRepo{dir}, Runner: fakeRunner{run},
		Defaults: manifest.Defaults{Isolation: manifest.Warm}, Metrics: &recorder{}, Logger: slog.New(slog.DiscardHandler)})
	return &testWorker{w, broker.Settler{Publisher: pub, ID: "w"}}, pub
}

func TestManifestChoosesIsolationAndTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		manifest    string
		defaulted   bool
		wantWarm    bool
		wantTimeout time.Duration
		wantThreads bool
	}{
		{"", true, true, 10 * time.Second, false},                                    // no manifest: the worker's default (warm)
		{`{"isolation":"process"}`, true, false, 10 * time.Second, false},            // per-request processes
		{`{"isolation":"threads"}`, true, true, 10 * time.Second, true},              // warm, def calls in threads
		{`{"timeout":2}`, true, true, 2 * time.Second, false},                        // caller named none: the manifest's
		{`{"timeout":2}`, false, true, 10 * time.Second, false},                      // caller named one: the caller's
		{`{"timeout":60,"memory_limit_mb":64}`, true, true, 10 * time.Second, false}, // never longer than the caller allows
	} {
		var got runner.Job
		w, _ := manifestWorker(t, tc.manifest, func(_ context.Context, j runner.Job) (runner.Result, error) {
			got = j
			return ok(context.Background(), j)
		})
		acks := newAckLog()
		req := contract.Request{Version: contract.Version, RequestID: "r", ScriptName: "s",
			Budget: contract.Budget{Timeout: 10, Deadline: time.Now().Add(30 * time.Second)}, TimeoutDefaulted: tc.defaulted}
		p, _ := req.Publishing(time.Now())
		w.Handle(amqpDelivery(acks, p.Body, p.CorrelationId))
		if e := acks.wait(t); e != "ack" {
			t.Fatalf("%s: settled with %s", tc.manifest, e)
		}
		if got.Warm != tc.wantWarm || got.Threads != tc.wantThreads || got.Timeout > tc.wantTimeout || got.Timeout < tc.wantTimeout-time.Second {
			t.Errorf("manifest %s defaulted=%v: warm=%v threads=%v timeout=%v", tc.manifest, tc.defaulted, got.Warm, got.Threads, got.Timeout)
		}
		if tc.manifest == `{"timeout":60,"memory_limit_mb":64}` && got.MemoryLimitBytes != 64<<20 {
			t.Errorf("memory limit %d", got.MemoryLimitBytes)
		}
	}
}

func TestManifestConcurrencyCap(t *testing.T) {
	t.Parallel()
	var running, peak atomic.Int32
	w, _ := manifestWorker(t, `{"concurrency":1}`, func(_ context.Context, j runner.Job) (runner.Result, error) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
		running.Add(-1)
		return ok(context.Background(), j)
	})
	acks := newAckLog()
	var wg sync.WaitGroup
	for i := range 3 {
		req := contract.Request{Version: contract.Version, RequestID: "r" + string(rune('a'+i)), ScriptName: "s", Budget: contract.Budget{Timeout: 5, Deadline: time.Now().Add(10 * time.Second)}}
		p, _ := req.Publishing(time.Now())
		w.Handle(amqpDelivery(acks, p.Body, p.CorrelationId))
		wg.Add(1)
		go func() { defer wg.Done(); acks.wait(t) }()
	}
	wg.Wait()
	if peak.Load() != 1 {
		t.Fatalf("%d runs of a concurrency-1 script ran at once", peak.Load())
	}
}

func TestBadManifestFailsClearly(t *testing.T) {
	t.Parallel()
	w, pub := manifestWorker(t, `{"isolation":"vm"}`, ok)
	acks := newAckLog()
	req := contract.Request{Version: contract.Version, RequestID: "r", ScriptName: "s", Budget: contract.Budget{Timeout: 5, Deadline: time.Now().Add(10 * time.Second)}}
	p, _ := req.Publishing(time.Now())
	w.Handle(amqpDelivery(acks, p.Body, p.CorrelationId))
	acks.wait(t)
	if r := pub.replies[0]; r.Error == nil || r.Error.Code != contract.CodeInvalidManifest {
		t.Fatalf("reply %+v", r)
	}
}

func amqpDelivery(acks *ackLog, body []byte, corr string) amqp.Delivery {
	return amqp.Delivery{Acknowledger: acks, Body: body, CorrelationId: corr, ReplyTo: "amq.rabbitmq.reply-to.x", Type: contract.RequestType}
}
