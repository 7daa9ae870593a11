package testkit

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

var metricsClient = &http.Client{Timeout: 10 * time.Second}

// Metric reads one sample from a Prometheus text endpoint: the first line that starts with series (a name,
// optionally with some of its labels, e.g. `scraping_rpc_replies_dropped_total{reason="late"}`). found is
// false when no line matches.
func Metric(url, series string) (value float64, found bool, err error) {
	resp, err := metricsClient.Get(url)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false, fmt.Errorf("GET %s: %w", url, err)
	}
	name, labels, _ := strings.Cut(strings.TrimSuffix(series, "}"), "{")
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		if labels != "" && !strings.Contains(line, labels) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, false, fmt.Errorf("metric line %q: %w", line, err)
		}
		return v, true, nil
	}
	return 0, false, nil
}
