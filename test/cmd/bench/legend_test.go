package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// Every column and unit make bench prints is explained: this tool's table headers, and the units the worker's
// benchmarks report with b.ReportMetric.
func TestLegendExplainsEveryColumn(t *testing.T) {
	columns := []string{"run", "requests/s", "p50", "p99", "errors", "ideal/s", "ratio", "peak RSS", "jobs", "jobs/s", "added p50", "MB/s",
		"machine", "broker", "gateway", "workers", "runners", "bench", "other", "idle"}
	unit := regexp.MustCompile(`ReportMetric\([^\n]*, "([^"]+)"\)`)
	for _, f := range []string{"../../../worker/internal/runner/bench_test.go", "../../../worker/internal/envcache/bench_test.go"} {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		found := unit.FindAllStringSubmatch(string(src), -1)
		if len(found) == 0 {
			t.Fatalf("%s reports no metric: is it still what make bench runs?", f)
		}
		for _, m := range found {
			columns = append(columns, m[1])
		}
	}
	for _, c := range columns {
		if !strings.Contains(legend, "\n  "+c+" ") {
			t.Errorf("the legend does not explain %q", c)
		}
	}
}
