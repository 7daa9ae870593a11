package runner

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/scripttest"
)

// BenchmarkColdVsWarm measures the per-request overhead of a trivial script run in a fresh process (cold)
// and on a warm runner, in the same run, and reports both and their ratio.
func BenchmarkColdVsWarm(b *testing.B) {
	r, err := New(Config{Python: "python3", WorkDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = r.Shutdown(b.Context()) }()
	j := Job{RequestID: "bench", ScriptName: "noop", ScriptDir: scripttest.Path(b, "returns_dict"), Parameters: []byte(`{}`), Timeout: 10 * time.Second, Version: "v"}
	measure := func(warm bool) time.Duration {
		j.Warm = warm
		if _, err := r.Run(context.Background(), j); err != nil { // warm-up (starts the warm runner)
			b.Fatal(err)
		}
		start := time.Now()
		for range b.N {
			res, err := r.Run(context.Background(), j)
			if err != nil || res.Err != nil {
				b.Fatalf("%v %+v", err, res.Err)
			}
		}
		return time.Since(start) / time.Duration(b.N)
	}
	b.ResetTimer()
	cold := measure(false)
	warm := measure(true)
	b.ReportMetric(float64(cold.Microseconds())/1000, "cold-ms/req")
	b.ReportMetric(float64(warm.Microseconds())/1000, "warm-ms/req")
	b.ReportMetric(float64(cold)/float64(warm), "cold/warm")
}

// BenchmarkSharedVsOneCallPerRunner measures N concurrent calls of an async script that awaits 200 ms (a
// page fetch), through one shared runner and through the old path, one call per runner with as many calls
// at once as a worker had slots by default (WORKER_CONCURRENCY = the CPU count), in the same run, and
// reports the throughput of both and their ratio.
func BenchmarkSharedVsOneCallPerRunner(b *testing.B) {
	const n = 64
	dir := scripttest.Path(b, "async_shared")
	measure := func(maxCalls, slots int) float64 {
		r, err := New(Config{Python: "python3", WorkDir: b.TempDir(), Warm: WarmConfig{MaxCalls: maxCalls, MaxIdle: slots}})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { _ = r.Shutdown(context.Background()) }()
		j := Job{RequestID: "bench", ScriptName: "async_shared", ScriptDir: dir, Parameters: []byte(`{"sleep":0.2}`),
			Timeout: time.Minute, Version: "v", Warm: true}
		round := func() {
			sem := make(chan struct{}, slots)
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() {
					sem <- struct{}{}
					defer func() { <-sem }()
					res, err := r.Run(context.Background(), j)
					if err != nil || res.Err != nil {
						b.Errorf("%v %+v", err, res.Err)
					}
				})
			}
			wg.Wait()
		}
		round() // warm-up: starts the runners
		start := time.Now()
		for range b.N {
			round()
		}
		return float64(n*b.N) / time.Since(start).Seconds()
	}
	b.ResetTimer()
	shared := measure(DefaultWarmMaxCalls, n)
	old := measure(1, runtime.NumCPU())
	b.ReportMetric(shared, "shared-calls/s")
	b.ReportMetric(old, "one-per-runner-calls/s")
	b.ReportMetric(shared/old, "shared/old")
	b.Logf("%d concurrent 200 ms calls: shared runner %.0f calls/s, one call per runner (%d slots) %.0f calls/s, ratio %.1f",
		n, shared, runtime.NumCPU(), old, shared/old)
}

// BenchmarkColdRunByContainment measures a trivial script's cold run under each containment the machine
// allows (namespaces and pidns need root, userns a non-root process where the kernel allows user
// namespaces), as the cost of each: the namespaces helper adds an exec of the worker's binary, mounts and a
// socket handed over per run; userns a user namespace and a fork without CLONE_VM.
func BenchmarkColdRunByContainment(b *testing.B) {
	for _, mode := range []string{ContainSession, ContainPIDNamespace, ContainNamespaces, ContainUserns} {
		b.Run(mode, func(b *testing.B) {
			r, err := New(Config{Python: "python3", WorkDir: b.TempDir(), Containment: mode})
			if err != nil {
				b.Skipf("%s: %v", mode, err)
			}
			defer func() { _ = r.Shutdown(b.Context()) }()
			j := Job{RequestID: "bench", ScriptName: "noop", ScriptDir: scripttest.Path(b, "returns_dict"), Parameters: []byte(`{}`),
				Timeout: 10 * time.Second, Version: "v"}
			b.ResetTimer()
			for range b.N {
				if res, err := r.Run(context.Background(), j); err != nil || res.Err != nil {
					b.Fatalf("%v %+v", err, res.Err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/run")
		})
	}
}
