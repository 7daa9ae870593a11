package main

import "testing"

// The bench reads the workers' start histogram: its count and sum, not its buckets, nor another metric
// whose name begins the same way.
func TestParseStarts(t *testing.T) {
	text := `# HELP scraping_warm_runner_start_duration_seconds Time to start one warm runner.
# TYPE scraping_warm_runner_start_duration_seconds histogram
scraping_warm_runner_start_duration_seconds_bucket{le="0.05"} 0
scraping_warm_runner_start_duration_seconds_bucket{le="+Inf"} 3
scraping_warm_runner_start_duration_seconds_sum 1.25
scraping_warm_runner_start_duration_seconds_count 3
scraping_warm_runner_start_duration_seconds_count_other 7
scraping_warm_runners_started_total 3
`
	got := parseStarts(text)
	if got.n != 3 || got.seconds != 1.25 {
		t.Fatalf("parseStarts = %+v, want 3 starts, 1.25 s", got)
	}
	if (starts{n: 5, seconds: 2}).minus(got) != (starts{n: 2, seconds: 0.75}) {
		t.Fatalf("minus = %+v", (starts{n: 5, seconds: 2}).minus(got))
	}
	if got := parseStarts("no metrics here\n"); got != (starts{}) {
		t.Fatalf("parseStarts of text without the histogram = %+v", got)
	}
}
