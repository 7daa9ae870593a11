package observability

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// syntheticJobs serves the job and webhook series (issue 10) that the Jobs dashboard and the
// WebhookDeliveriesFailing alert read, as one more worker target and one more gateway target of the test's
// Prometheus: the names, types and labels the worker and the gateway export (worker/README.md,
// functions/README.md), with counters that grow with time so every rate has data. The traffic above does
// not run jobs with large results or webhooks, so these series are fed here, the way a scrape target
// would expose them; the queries and the alert expression are the real files' either way.
type syntheticJobs struct {
	worker, gateway *httptest.Server
	start           time.Time

	mu sync.Mutex
	// webhookFailures is the failed deliveries' counter: constant (0) while all is well, raised by failWebhooks.
	webhookFailures int
}

func startSyntheticJobs(t *testing.T) *syntheticJobs {
	t.Helper()
	s := &syntheticJobs{start: time.Now()}
	s.worker = httptest.NewServer(http.HandlerFunc(s.serveWorker))
	s.gateway = httptest.NewServer(http.HandlerFunc(s.serveGateway))
	t.Cleanup(s.worker.Close)
	t.Cleanup(s.gateway.Close)
	return s
}

// failWebhooks makes n more deliveries fail for good.
func (s *syntheticJobs) failWebhooks(n int) {
	s.mu.Lock()
	s.webhookFailures += n
	s.mu.Unlock()
}

// counter is a counter value that grows by perSecond.
func (s *syntheticJobs) counter(perSecond float64) float64 {
	return float64(int(time.Since(s.start).Seconds()*perSecond)) + 1
}

func (s *syntheticJobs) serveWorker(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	failures := s.webhookFailures
	s.mu.Unlock()
	var b strings.Builder
	b.WriteString("# TYPE scraping_jobs_finished_total counter\n")
	for status, rate := range map[string]float64{"completed": 8, "failed": 1, "timeout": 0.5, "cancelled": 0.5} {
		fmt.Fprintf(&b, "scraping_jobs_finished_total{status=%q} %g\n", status, s.counter(rate))
	}
	b.WriteString("# TYPE scraping_job_duration_seconds histogram\n")
	total := s.counter(10)
	cum := 0.0
	for _, le := range []struct {
		bound string
		share float64
	}{{"0.5", 0.2}, {"1", 0.3}, {"5", 0.2}, {"30", 0.2}, {"300", 0.05}, {"3600", 0.05}} {
		cum += le.share
		fmt.Fprintf(&b, "scraping_job_duration_seconds_bucket{le=%q} %g\n", le.bound, float64(int(total*cum)))
	}
	fmt.Fprintf(&b, "scraping_job_duration_seconds_bucket{le=\"+Inf\"} %g\nscraping_job_duration_seconds_sum %g\nscraping_job_duration_seconds_count %g\n",
		total, total*12, total)
	b.WriteString("# TYPE scraping_results_total counter\n")
	fmt.Fprintf(&b, "scraping_results_total{storage=\"inline\"} %g\nscraping_results_total{storage=\"claim_check\"} %g\n", s.counter(9), s.counter(1))
	b.WriteString("# TYPE scraping_result_bytes_total counter\n")
	fmt.Fprintf(&b, "scraping_result_bytes_total{storage=\"inline\"} %g\nscraping_result_bytes_total{storage=\"claim_check\"} %g\n", s.counter(9*4096), s.counter(10<<20))
	b.WriteString("# TYPE scraping_webhook_deliveries_total counter\n")
	fmt.Fprintf(&b, "scraping_webhook_deliveries_total{outcome=\"delivered\",attempt=\"1\"} %g\n", s.counter(2))
	fmt.Fprintf(&b, "scraping_webhook_deliveries_total{outcome=\"retry\",attempt=\"1\"} %g\n", s.counter(0.5))
	fmt.Fprintf(&b, "scraping_webhook_deliveries_total{outcome=\"delivered\",attempt=\"2\"} %g\n", s.counter(0.5))
	fmt.Fprintf(&b, "scraping_webhook_deliveries_total{outcome=\"failed\",attempt=\"9\"} %d\n", failures)
	fmt.Fprintf(&b, "scraping_webhook_deliveries_total{outcome=\"refused\",attempt=\"1\"} 0\n")
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprint(w, b.String())
}

func (s *syntheticJobs) serveGateway(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "# TYPE scraping_gateway_jobs_accepted_total counter\nscraping_gateway_jobs_accepted_total{mode=\"sync\"} %g\nscraping_gateway_jobs_accepted_total{mode=\"async\"} %g\n",
		s.counter(8), s.counter(2))
}
