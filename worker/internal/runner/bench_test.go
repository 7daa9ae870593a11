package runner

import (
	"context"
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
