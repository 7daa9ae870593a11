package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// management calls the test broker's management API (RABBITMQ_MANAGEMENT_URL, default
// http://127.0.0.1:15672, guest/guest; .ci/run enables the plugin) and decodes a JSON answer into out.
func management(t *testing.T, method, path string, body, out any) {
	t.Helper()
	base := os.Getenv("RABBITMQ_MANAGEMENT_URL")
	if base == "" {
		base = "http://127.0.0.1:15672"
	}
	var payload io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		payload = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, payload)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("RabbitMQ management API (enable it with `rabbitmq-plugins enable rabbitmq_management`; .ci/run does): %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s %s", method, path, resp.Status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// A task queue at its bound answers 429 queue_full with Retry-After, as openapi.json documents (every answer
// here is checked against it), and the work accepted before still completes.
func TestFullQueueIs429(t *testing.T) {
	e := start(t, 1, "WORKER_CONCURRENCY=1")
	policy := "/api/policies/%2F/" + url.PathEscape(e.queue+"-bound")
	management(t, "PUT", policy, map[string]any{"pattern": "^" + e.queue + "$", "apply-to": "queues", "priority": 10,
		"definition": map[string]any{"max-length": 1, "overflow": "reject-publish"}}, nil)
	t.Cleanup(func() { management(t, "DELETE", policy, nil, nil) })
	queuePolicy := func() string {
		var q struct {
			Policy string `json:"policy"`
		}
		management(t, "GET", "/api/queues/%2F/"+url.PathEscape(e.queue), nil, &q)
		return q.Policy
	}
	waitFor := func(what string, ok func() bool) {
		for end := time.Now().Add(20 * time.Second); !ok(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor("the bound policy to apply", func() bool { return queuePolicy() == e.queue+"-bound" })

	type answer struct {
		code       int
		retryAfter string
		body       map[string]any
	}
	post := func(params map[string]any) answer {
		b, _ := json.Marshal(map[string]any{"script_name": "sleeper", "parameters": params, "timeout": maxTimeout})
		req, _ := http.NewRequest("POST", e.url+"/scrape", bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+e.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			t.Errorf("POST /scrape: %v", err)
			return answer{}
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		checkAgainstSpec(t, "POST", e.url+"/scrape", b, resp.Header, resp.StatusCode, raw)
		a := answer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
		_ = json.Unmarshal(raw, &a.body)
		return a
	}

	// The only slot runs a scrape that lasts until the test releases it; once the worker has started it, five
	// more arrive, 200 ms apart, into a queue bounded at 1. Nothing leaves the queue while the slot is held,
	// so what is accepted depends only on the bound, not on the machine's speed.
	var wg sync.WaitGroup
	answers := make([]answer, 6)
	release := filepath.Join(t.TempDir(), "release")
	wg.Go(func() { answers[0] = post(map[string]any{"seconds": 20, "until_file": release}) })
	e.out.WaitLine(t, 10*time.Second, `"msg":"task started"`, `"script":"sleeper"`)
	var answered atomic.Int32 // fills answered while the slot is held: refused, or an error
	for i := 1; i < len(answers); i++ {
		wg.Go(func() {
			answers[i] = post(map[string]any{"seconds": 0.05, "n": i})
			answered.Add(1)
		})
		time.Sleep(200 * time.Millisecond)
	}
	// Release the slot once every fill is settled: answered, or waiting in the queue (/status counts the
	// ready messages with a passive declare, which does not lag like the management API's counters).
	queued := 0
	waitFor("every fill to be refused or queued", func() bool {
		r := e.do(t, "GET", "/status", "", e.token)
		n, _ := r.Body["queue_length"].(float64)
		queued = int(n)
		return int(answered.Load())+queued >= len(answers)-1
	})
	t.Logf("while the slot was held: %d fills answered, %d queued", answered.Load(), queued)
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if data, _ := answers[0].body["data"].(map[string]any); data["released"] != true {
		t.Errorf("the running scrape was not released by the test: %v", answers[0].body)
	}
	full, completed := 0, 0
	for i, a := range answers {
		switch {
		case a.code == 429:
			full++
			if a.body["error_code"] != "queue_full" || a.retryAfter == "" || !strings.Contains(fmt.Sprint(a.body["error"]), "queue is full") {
				t.Errorf("answer %d: 429 %v, Retry-After %q", i, a.body, a.retryAfter)
			}
		case a.code == 200 && a.body["status"] == "completed":
			completed++
		default:
			t.Errorf("answer %d: %d %v", i, a.code, a.body)
		}
	}
	// The running task, the one at the bound and (a quorum queue learns it is full from the publish that
	// fills it) at most one more are accepted; the rest are refused.
	if full < 2 || completed < 2 || completed > 3 {
		t.Errorf("%d refused with 429, %d completed; want 2 or 3 accepted and completed, the rest 429", full, completed)
	}
}
