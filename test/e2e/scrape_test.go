package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/auth"
)

const page = `<!doctype html><html><head><meta charset="utf-8"><title>Widgets &amp; Co</title></head>
<body><h1>All widgets</h1><h2>Blue widget</h2><p>cheap</p><h2>Red widget</h2>
<a href="/widgets/blue">Blue</a> <a href="https://other.invalid/x">Elsewhere</a></body></html>`

// TestStack runs the main scenarios against one stack of a gateway and two workers.
func TestStack(t *testing.T) {
	e := start(t, 2)
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, page)
	}))
	t.Cleanup(site.Close)

	t.Run("completed scrape of a real page", func(t *testing.T) {
		r := e.scrape(t, "example_scraper", map[string]any{"url": site.URL + "/shop"}, 10)
		if r.Code != 200 || r.Body["status"] != "completed" {
			t.Fatalf("got %d %s", r.Code, r.Raw)
		}
		data := r.Body["data"].(map[string]any)
		if data["title"] != "Widgets & Co" || data["status_code"] != float64(200) {
			t.Fatalf("data %v", data)
		}
		if h := data["headings"].([]any); len(h) != 3 || h[0].(map[string]any)["text"] != "All widgets" {
			t.Fatalf("headings %v", h)
		}
		links := fmt.Sprint(data["links"])
		if !strings.Contains(links, site.URL+"/widgets/blue") {
			t.Fatalf("relative link not made absolute: %v", links)
		}
		for _, k := range []string{"request_id", "worker_id", "execution_time", "script_version"} {
			if r.Body[k] == nil || r.Body[k] == "" {
				t.Errorf("response lacks %s: %s", k, r.Raw)
			}
		}
		if r.Body["error"] != nil || r.Body["error_code"] != nil {
			t.Errorf("completed scrape carries an error: %s", r.Raw)
		}
	})

	t.Run("async script", func(t *testing.T) {
		r := e.scrape(t, "async_echo", map[string]any{"n": 1}, 5)
		if r.Code != 200 || r.Body["status"] != "completed" || r.Body["data"].(map[string]any)["async"] != true {
			t.Fatalf("got %d %s", r.Code, r.Raw)
		}
	})

	t.Run("concurrent scrapes spread over both workers", func(t *testing.T) {
		results := concurrently(8, func(i int) response {
			return e.scrape(t, "sleeper", map[string]any{"seconds": 0.5, "i": i}, 10)
		})
		workers := map[any]bool{}
		for i, r := range results {
			if r.Code != 200 || r.Body["status"] != "completed" {
				t.Fatalf("scrape %d: %d %s", i, r.Code, r.Raw)
			}
			workers[r.Body["worker_id"]] = true
		}
		// Each worker holds at most 3 unacked tasks (prefetch = WORKER_CONCURRENCY), so 8 concurrent
		// half-second scrapes cannot all land on one worker.
		if len(workers) != 2 {
			t.Fatalf("scrapes ran on %d workers, want 2: %v", len(workers), workers)
		}
	})

	t.Run("blocking script in a threads runner", func(t *testing.T) {
		// threads_shared's manifest asks for "isolation": "threads": the calls one worker runs at once share
		// one runner process, a thread each.
		results := concurrently(6, func(int) response {
			return e.scrape(t, "threads_shared", map[string]any{"sleep": 0.5}, 10)
		})
		runners, workers := map[string]bool{}, map[any]bool{}
		for i, r := range results {
			if r.Code != 200 || r.Body["status"] != "completed" {
				t.Fatalf("scrape %d: %d %s", i, r.Code, r.Raw)
			}
			data := r.Body["data"].(map[string]any)
			if thread, _ := data["thread"].(string); !strings.HasPrefix(thread, "scrape-call-") {
				t.Fatalf("scrape %d ran in thread %q, not a threads runner's: %s", i, thread, r.Raw)
			}
			runners[fmt.Sprint(r.Body["worker_id"], "/", data["pid"])] = true
			workers[r.Body["worker_id"]] = true
		}
		if len(runners) != len(workers) {
			t.Fatalf("calls ran in runners %v on workers %v: want one runner per worker", runners, workers)
		}
	})

	t.Run("unknown script", func(t *testing.T) {
		r := e.scrape(t, "no_such_script", nil, 5)
		if r.Code != 200 || r.Body["status"] != "failed" || r.Body["error_code"] != "script_not_found" ||
			!strings.Contains(r.Body["error"].(string), "no_such_script") {
			t.Fatalf("got %d %s", r.Code, r.Raw)
		}
	})

	t.Run("script that raises", func(t *testing.T) {
		r := e.scrape(t, "raiser", map[string]any{"url": "http://shop"}, 5)
		if r.Code != 200 || r.Body["status"] != "failed" || r.Body["error_code"] != "script_error" ||
			r.Body["error_type"] != "ValueError" || !strings.Contains(r.Body["error"].(string), "the page has no prices") {
			t.Fatalf("got %d %s", r.Code, r.Raw)
		}
	})

	t.Run("timeout kills the script and its children", func(t *testing.T) {
		pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
		start := time.Now()
		// 8 s: time for the script to start its grandchild and record its pid on a loaded machine; it sleeps
		// 60 s, so only the timeout ends it.
		const timeout = 8
		r := e.scrape(t, "sleeper", map[string]any{"seconds": 60, "pid_file": pidFile}, timeout)
		elapsed := time.Since(start)
		// The contract: an answer within timeout + the gateway's reply grace. The gateway enforces it itself:
		// past that deadline it answers 504 no_worker_response, which this status check refuses. How long the
		// answer took on this machine is only reported.
		if r.Code != 200 || r.Body["status"] != "timeout" || r.Body["error_code"] != "script_timeout" {
			t.Fatalf("got %d %s", r.Code, r.Raw)
		}
		t.Logf("timeout answer (timeout %d s) took %v", timeout, elapsed.Round(time.Millisecond))
		b, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatalf("script never wrote its grandchild's pid: %v", err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		// The worker kills the group before it replies; the deadline only guards against a hang.
		deadline := time.Now().Add(20 * time.Second)
		for processAlive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("grandchild %d still alive after the timeout", pid)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})

	t.Run("script sees none of the worker's secrets", func(t *testing.T) {
		r := e.scrape(t, "envdump", nil, 5)
		if r.Code != 200 || r.Body["status"] != "completed" {
			t.Fatalf("got %d %s", r.Code, r.Raw)
		}
		environ := r.Body["data"].(map[string]any)["environ"].(map[string]any)
		for k, v := range environ {
			if strings.HasPrefix(k, "RABBITMQ") || strings.HasPrefix(k, "JWT") || strings.HasPrefix(k, "AWS") ||
				strings.Contains(fmt.Sprint(v), secret) || strings.Contains(fmt.Sprint(v), "guest:guest") {
				t.Errorf("script sees %s=%v", k, v)
			}
		}
		if _, ok := environ["PATH"]; !ok {
			t.Error("script has no PATH")
		}
	})

	t.Run("printed output goes to logs, not the result", func(t *testing.T) {
		r := e.scrape(t, "prints_progress", map[string]any{"lines": 2000}, 10)
		if r.Code != 200 || r.Body["status"] != "completed" {
			t.Fatalf("got %d %s", r.Code, r.Raw)
		}
		if strings.Contains(r.Raw, "progress line") {
			t.Fatal("script output leaked into the result")
		}
		// One request_id ties the gateway's log line, the worker's, and the script's own output together.
		id := r.Body["request_id"].(string)
		idField := `"request_id":"` + id + `"`
		e.out.WaitLine(t, 10*time.Second, "[gateway]", idField, `"msg":"scrape answered"`)
		e.out.WaitLine(t, 10*time.Second, "[worker-", idField, `"msg":"task done"`)
		e.out.WaitLine(t, 10*time.Second, "[worker-", idField, `"msg":"script output"`, `"stream":"stderr"`, "a warning on stderr")
	})

	t.Run("authentication", func(t *testing.T) {
		body := `{"script_name":"echo"}`
		wrong, _ := auth.IssueHS256([]byte("some-other-secret-some-other-secret-000"), auth.Claims{Subject: "x"}, time.Hour)
		tooLong, _ := auth.IssueHS256([]byte(secret), auth.Claims{Subject: "x"}, 48*time.Hour)
		for name, tok := range map[string]string{"no token": "", "garbage": "not.a.jwt", "wrong key": wrong,
			"lifetime over JWT_MAX_TTL": tooLong, "case-folded SUB and EXP": rawHS256(`{"SUB":"x","EXP":` + strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10) + `}`),
			"exp as a string": rawHS256(`{"sub":"x","exp":"` + strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10) + `"}`)} {
			r := e.do(t, "POST", "/scrape", body, tok)
			if r.Code != 401 || r.Body["error_code"] != "unauthorized" {
				t.Errorf("%s: got %d %s", name, r.Code, r.Raw)
			}
		}
	})

	t.Run("bad input over HTTP", func(t *testing.T) {
		for _, tc := range []struct {
			body string
			code int
		}{
			{`{"script_name":`, 400},
			{`{"script_name":"echo","bogus":1}`, 400},
			{`{"script_name":"../../etc/passwd"}`, 422},
			{`{"script_name":"echo","timeout":-1}`, 422},
			{`{"script_name":"echo","parameters":{"x":"` + strings.Repeat("x", 400*1024) + `"}}`, 413},
			// Strict input: a key twice or case-folded, numbers not every side reads alike, sub-ms timeouts.
			{`{"script_name":"echo","script_name":"other"}`, 400},
			{`{"script_name":"echo","parameters":{"a":1,"\u0061":2}}`, 400},
			{`{"SCRIPT_NAME":"echo"}`, 400},
			{`{"ſcript_name":"echo"}`, 400},
			{`{"script_name":"echo","parameters":{"n":` + strings.Repeat("9", 5000) + `}}`, 422},
			{`{"script_name":"echo","parameters":{"n":9007199254740993}}`, 422},
			{`{"script_name":"echo","timeout":24.0000000001}`, 422},
			{`{"script_name":"echo","timeout":25.0000000001}`, 422},
		} {
			r := e.do(t, "POST", "/scrape", tc.body, e.token)
			if r.Code != tc.code || r.Body["error"] == nil || r.Body["error_code"] == nil {
				t.Errorf("body %.60q: got %d %s", tc.body, r.Code, r.Raw)
			}
		}
	})

	t.Run("health and status", func(t *testing.T) {
		r := e.do(t, "GET", "/health", "", "")
		if r.Code != 200 || r.Body["status"] != "healthy" || r.Body["components"].(map[string]any)["rabbitmq"] != "connected" {
			t.Fatalf("health: %d %s", r.Code, r.Raw)
		}
		r = e.do(t, "GET", "/status", "", e.token)
		if r.Code != 200 {
			t.Fatalf("status: %d %s", r.Code, r.Raw)
		}
		if r.Body["active_workers"] != float64(2) || r.Body["queue_length"] != float64(0) {
			t.Errorf("status: %s", r.Raw)
		}
		for _, k := range []string{"memory_usage", "cpu_usage"} {
			if v, ok := r.Body[k].(float64); !ok || v < 0 || v > 100 {
				t.Errorf("%s = %v", k, r.Body[k])
			}
		}
	})

	t.Run("worker metrics", func(t *testing.T) {
		resp, err := http.Get(e.stack.WorkerMetricsURLs()[0] + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := new(strings.Builder)
		_, _ = fmt.Fprint(b, readAll(resp))
		for _, m := range []string{"scraping_requests_total{", "scraping_request_duration_seconds_bucket{", "scraping_worker_slots 3"} {
			if !strings.Contains(b.String(), m) {
				t.Errorf("metrics lack %s", m)
			}
		}
	})
}

func readAll(resp *http.Response) string {
	b := new(strings.Builder)
	buf := make([]byte, 32*1024)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// concurrently runs call(0) … call(n-1) at once and returns their responses in order.
func concurrently(n int, call func(i int) response) []response {
	var wg sync.WaitGroup
	results := make([]response, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = call(i)
		}()
	}
	wg.Wait()
	return results
}
