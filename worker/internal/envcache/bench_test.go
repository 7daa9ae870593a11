package envcache

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/wheeltest"
)

// BenchmarkFirstRequestEnvironment measures what a script's first request pays for its environment: a
// build (venv + offline pip install of one wheel) when uncached, a lookup when cached, plus one run of the
// environment's interpreter either way, and reports both and their ratio.
func BenchmarkFirstRequestEnvironment(b *testing.B) {
	py, err := exec.LookPath("python3")
	if err != nil {
		b.Fatal(err)
	}
	out, err := exec.Command(py, "-I", "-S", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		b.Fatal(err)
	}
	wheels := b.TempDir()
	wheeltest.Build(b, wheels, "conflictpkg", "1.0", "")
	reqFile := filepath.Join(b.TempDir(), "requirements.txt")
	if err := os.WriteFile(reqFile, []byte("conflictpkg==1.0\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	newCache := func() *Cache {
		c, err := New(Config{Root: filepath.Join(b.TempDir(), "envs"), Python: strings.TrimSpace(string(out)),
			Getenv: func(k string) string { return map[string]string{"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": wheels}[k] },
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	firstRequest := func(c *Cache) {
		l, err := c.Get(context.Background(), reqFile)
		if err != nil {
			b.Fatal(err)
		}
		if out, err := exec.Command(l.Python, "-I", "-c", "import conflictpkg").CombinedOutput(); err != nil {
			b.Fatalf("%v %s", err, out)
		}
		l.Release()
	}
	b.ResetTimer()
	var uncached, cached time.Duration
	for range b.N {
		start := time.Now()
		firstRequest(newCache()) // a worker that never built this environment
		uncached += time.Since(start)
	}
	warm := newCache()
	firstRequest(warm)
	for range b.N {
		c, err := New(warm.cfg) // a restarted worker finding the environment on disk
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		firstRequest(c)
		cached += time.Since(start)
	}
	n := time.Duration(b.N)
	b.ReportMetric(float64((uncached / n).Milliseconds()), "uncached-ms")
	b.ReportMetric(float64((cached/n).Microseconds())/1000, "cached-ms")
	b.ReportMetric(float64(uncached)/float64(cached), "uncached/cached")
}
