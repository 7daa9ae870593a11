package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI implements the HTTP API's job routes the way functions/README.md describes them: POST /scrape
// (200, or 202 + Location), GET /jobs/{id}?wait=N, DELETE /jobs/{id}, errors as {error, error_code,
// request_id}. Each job walks through its states, one per GET.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server

	mu sync.Mutex
	// script is the states a new job goes through, one per GET; the last one stays.
	script []state
	// sync answers POST /scrape with the script's last state at once (200).
	sync bool
	// failPosts answers the first failPosts POSTs 503 job_store_unavailable, Retry-After: 0.
	failPosts int
	// refuse answers every POST with this status and error code.
	refuse     int
	refuseCode string

	posts    int
	keys     []string // Idempotency-Key of every POST
	prefer   []string
	bodies   []map[string]any
	jobs     map[string]*fakeJob
	byKey    map[string]string
	runs     int // jobs created (the script "ran")
	gets     []string
	deletes  []string
	gotFirst chan struct{} // closed at the first GET /jobs/{id}
	// iam, when set, makes the fake API Gateway's IAM routes: every request must be under /iam and signed
	// with iam's key (sigv4_test.go); the bearer token is not asked for.
	iam *iamRoutes
}

type state struct {
	status  string
	data    string // JSON
	dataURL string // "" or a URL; "redirect" means /results/{id} on this server
	err     string
}

type fakeJob struct {
	id   string
	step int
	st   state
}

func newFakeAPI(t *testing.T, script ...state) *fakeAPI {
	f := &fakeAPI{t: t, script: script, jobs: map[string]*fakeJob{}, byKey: map[string]string{}, gotFirst: make(chan struct{})}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeAPI) body(j *fakeJob) map[string]any {
	b := map[string]any{"request_id": j.id, "status": j.st.status, "created_at": "2026-12-05T09:00:00Z"}
	if j.st.data != "" {
		b["data"] = json.RawMessage(j.st.data)
	}
	if j.st.dataURL == "redirect" {
		b["data_url"] = f.srv.URL + "/results/" + j.id
	} else if j.st.dataURL != "" {
		b["data_url"] = j.st.dataURL
	}
	if j.st.err != "" {
		b["error"], b["error_code"] = j.st.err, "script_error"
	}
	if j.st.status == "completed" {
		b["execution_time"], b["worker_id"] = 1.25, "worker-1"
	}
	return b
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.HasPrefix(r.URL.Path, "/results/") {
		// The presigned URL of a claim-checked result: here a redirect to the bucket (another server).
		http.Redirect(w, r, bucketURL, http.StatusFound)
		return
	}
	if f.iam != nil {
		if !f.iam.admit(w, r) {
			return
		}
	} else if r.Header.Get("Authorization") != "Bearer tok" {
		writeJSON(w, 401, map[string]string{"error": "missing or invalid token", "error_code": "unauthorized", "request_id": "r0"})
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/scrape":
		f.posts++
		key := r.Header.Get("Idempotency-Key")
		f.keys = append(f.keys, key)
		f.prefer = append(f.prefer, r.Header.Get("Prefer"))
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			writeJSON(w, 400, map[string]string{"error": err.Error(), "error_code": "invalid_json"})
			return
		}
		f.bodies = append(f.bodies, body)
		if f.refuse != 0 {
			writeJSON(w, f.refuse, map[string]string{"error": "refused by the test", "error_code": f.refuseCode, "request_id": "r1"})
			return
		}
		if f.posts <= f.failPosts {
			w.Header().Set("Retry-After", "0")
			writeJSON(w, 503, map[string]string{"error": "the job store is unavailable", "error_code": "job_store_unavailable", "request_id": "r2"})
			return
		}
		id, ok := f.byKey[key]
		if !ok {
			f.runs++
			id = fmt.Sprintf("job-%d", f.runs)
			f.jobs[id] = &fakeJob{id: id, st: state{status: "queued"}}
			f.byKey[key] = id
		}
		j := f.jobs[id]
		if f.sync {
			j.st = f.script[len(f.script)-1]
			writeJSON(w, 200, f.body(j))
			return
		}
		w.Header().Set("Location", "/jobs/"+id)
		writeJSON(w, 202, map[string]any{"request_id": id, "status": j.st.status, "created_at": "2026-12-05T09:00:00Z"})
	case strings.HasPrefix(r.URL.Path, "/jobs/"):
		id := strings.TrimPrefix(r.URL.Path, "/jobs/")
		j := f.jobs[id]
		if j == nil {
			writeJSON(w, 404, map[string]string{"error": "no such job", "error_code": "job_not_found", "request_id": "r3"})
			return
		}
		switch r.Method {
		case http.MethodGet:
			f.gets = append(f.gets, r.URL.RawQuery)
			if len(f.gets) == 1 {
				close(f.gotFirst)
			}
			if j.st.status != "cancelled" && j.step < len(f.script) {
				j.st = f.script[j.step]
				j.step++
			} else if r.URL.Query().Get("wait") != "" {
				// A long poll of a job that does not change: hold it a little, as the API would (up to 20 s).
				f.mu.Unlock()
				time.Sleep(20 * time.Millisecond)
				f.mu.Lock()
			}
			writeJSON(w, 200, f.body(j))
		case http.MethodDelete:
			f.deletes = append(f.deletes, id)
			if !(j.st.status == "completed" || j.st.status == "failed" || j.st.status == "timeout") {
				j.st = state{status: "cancelled", err: "cancelled by the client"}
			}
			writeJSON(w, 200, f.body(j))
		}
	default:
		writeJSON(w, 404, map[string]string{"error": "no route", "error_code": "not_found"})
	}
}

// bucketURL is the second server's blob (set by startBucket).
var bucketURL string

// startBucket serves blob as the presigned result, refusing requests that carry an Authorization header
// (S3 refuses a presigned URL with a second credential; scrapectl must not leak the token to it).
func startBucket(t *testing.T, blob []byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			http.Error(w, "<Error><Code>InvalidArgument</Code>Only one auth mechanism allowed</Error>", 400)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(blob)))
		w.Write(blob)
	}))
	t.Cleanup(srv.Close)
	bucketURL = srv.URL + "/results/blob.json"
	return srv
}

type cliResult struct {
	stdout, stderr string
	err            error
	code           int
}

// scrapectl runs the CLI against f with t's terminal (nil: no terminal, no interrupts).
func scrapectl(t *testing.T, f *fakeAPI, term *terminal, args ...string) cliResult {
	t.Helper()
	if term == nil {
		term = &terminal{}
	}
	return scrapectlEnv(t, map[string]string{"SCRAPE_API_URL": f.srv.URL + "/", "SCRAPE_TOKEN": "tok"}, term, args...)
}

// scrapectlEnv runs the CLI with env and t's terminal, whose output streams it sets (and stdin, when nil).
func scrapectlEnv(t *testing.T, env map[string]string, term *terminal, args ...string) cliResult {
	t.Helper()
	var out, errOut bytes.Buffer
	if term.stdin == nil {
		term.stdin = strings.NewReader("")
	}
	term.stdout, term.stderr, term.noRetryDelay = &out, &errOut, true
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := runTerminal(ctx, args, func(k string) string { return env[k] }, term)
	return cliResult{stdout: out.String(), stderr: errOut.String(), err: err, code: exitCode(err)}
}

func TestScrapeSyncAnswerPrintsTheResult(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t, state{status: "completed", data: `{"title":"Example"}`})
	f.sync = true
	r := scrapectl(t, f, nil, "scrape", "example_scraper", "--params", `{"url":"https://example.com/"}`, "--timeout", "60")
	if r.code != 0 || strings.TrimSpace(r.stdout) != `{"title":"Example"}` {
		t.Fatalf("exit %d, stdout %q, stderr %q, err %v", r.code, r.stdout, r.stderr, r.err)
	}
	if b := f.bodies[0]; b["script_name"] != "example_scraper" || b["timeout"] != 60.0 || fmt.Sprint(b["parameters"]) != "map[url:https://example.com/]" {
		t.Errorf("request body %v", b)
	}
	if len(f.keys[0]) != 32 || f.prefer[0] != "" || len(f.gets) != 0 {
		t.Errorf("Idempotency-Key %q, Prefer %q, GETs %v", f.keys[0], f.prefer[0], f.gets)
	}
	if !strings.Contains(r.stderr, "job job-1 completed in 1.25s on worker-1") {
		t.Errorf("stderr %q", r.stderr)
	}
}

func TestScrapeWaitsForTheJob(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t, state{status: "queued"}, state{status: "running"}, state{status: "running"}, state{status: "completed", data: `[1,2,3]`})
	r := scrapectl(t, f, nil, "scrape", "slow", "--progress", "never")
	if r.code != 0 || strings.TrimSpace(r.stdout) != `[1,2,3]` {
		t.Fatalf("exit %d, stdout %q, stderr %q, err %v", r.code, r.stdout, r.stderr, r.err)
	}
	// Plain lines, one per change of status, in order.
	var statuses []string
	for _, line := range strings.Split(r.stderr, "\n") {
		if strings.HasPrefix(line, "job job-1 ") && strings.HasSuffix(line, "s)") {
			statuses = append(statuses, strings.Fields(line)[2])
		}
	}
	if strings.Join(statuses, " ") != "queued running completed" {
		t.Errorf("status lines %v in %q", statuses, r.stderr)
	}
	for _, q := range f.gets {
		if q != "wait=20" {
			t.Errorf("GET /jobs/job-1?%s, want the 20 s long poll", q)
		}
	}
	if len(f.gets) != 4 || f.runs != 1 {
		t.Errorf("%d GETs, %d runs", len(f.gets), f.runs)
	}
}

func TestScrapeStatusLineOnATerminal(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t, state{status: "running"}, state{status: "completed", data: `1`})
	r := scrapectl(t, f, nil, "scrape", "x", "--progress", "always")
	if r.code != 0 || !strings.Contains(r.stderr, "\r\033[Kjob job-1 running  ") || !strings.Contains(r.stderr, "\r\033[Kjob job-1 completed  ") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestScrapeAsyncPrintsTheJobID(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t, state{status: "completed", data: `1`})
	r := scrapectl(t, f, nil, "scrape", "x", "--async")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "job-1" || f.prefer[0] != "respond-async" || len(f.gets) != 0 {
		t.Fatalf("exit %d, stdout %q, Prefer %q, GETs %v", r.code, r.stdout, f.prefer, f.gets)
	}
	// The job is there to read later.
	r = scrapectl(t, f, nil, "jobs", "get", "job-1")
	if r.code != 0 || !strings.Contains(r.stdout, `"status": "completed"`) {
		t.Fatalf("jobs get: exit %d, stdout %q, err %v", r.code, r.stdout, r.err)
	}
}

// TestScrapeRetriesWithTheSameKey: a submission the API could not take is retried with the same
// Idempotency-Key, so the script runs once however often the request is sent.
func TestScrapeRetriesWithTheSameKey(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t, state{status: "completed", data: `"ok"`})
	f.failPosts = 2
	r := scrapectl(t, f, nil, "scrape", "x")
	if r.code != 0 || strings.TrimSpace(r.stdout) != `"ok"` {
		t.Fatalf("exit %d, stdout %q, stderr %q, err %v", r.code, r.stdout, r.stderr, r.err)
	}
	if f.posts != 3 || f.keys[0] != f.keys[1] || f.keys[1] != f.keys[2] || f.runs != 1 {
		t.Errorf("%d POSTs with keys %v, %d runs", f.posts, f.keys, f.runs)
	}
	if !strings.Contains(r.stderr, "job_store_unavailable") || !strings.Contains(r.stderr, "same Idempotency-Key") {
		t.Errorf("stderr %q", r.stderr)
	}

	// Given a key, the CLI sends that one: running the command again answers the same job.
	g := newFakeAPI(t, state{status: "completed", data: `1`})
	g.sync = true
	for range 2 {
		if r := scrapectl(t, g, nil, "scrape", "x", "--idempotency-key", "nightly-2026-12-05"); r.code != 0 {
			t.Fatalf("exit %d: %v", r.code, r.err)
		}
	}
	if g.runs != 1 || g.keys[1] != "nightly-2026-12-05" {
		t.Errorf("%d runs for keys %v", g.runs, g.keys)
	}
}

// TestScrapeFollowsDataURL: a claim-checked result is fetched from data_url (here a redirect to a second
// server, as a presigned URL on S3 is), streamed to --out or stdout, without the API token.
func TestScrapeFollowsDataURL(t *testing.T) {
	blob := []byte(`{"html":"` + strings.Repeat("x", 3<<20) + `"}`)
	startBucket(t, blob)
	f := newFakeAPI(t, state{status: "running"}, state{status: "completed", dataURL: "redirect"})
	out := filepath.Join(t.TempDir(), "result.json")
	r := scrapectl(t, f, nil, "scrape", "big", "--out", out)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q, err %v", r.code, r.stderr, r.err)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, blob) {
		t.Fatalf("--out holds %d bytes (err %v), want the %d-byte result", len(got), err, len(blob))
	}
	if r.stdout != "" || !strings.Contains(r.stderr, "result in "+out) {
		t.Errorf("stdout %q, stderr %q", r.stdout, r.stderr)
	}
	if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 1 {
		t.Errorf("leftover files beside the result: %v", entries)
	}

	// To stdout, and through jobs get --out.
	r = scrapectl(t, f, nil, "jobs", "get", "job-1")
	if r.code != 0 || !strings.Contains(r.stdout, `"data_url": "`+f.srv.URL+`/results/job-1"`) {
		t.Fatalf("jobs get: exit %d, stdout %.300q", r.code, r.stdout)
	}
	out2 := filepath.Join(t.TempDir(), "again.json")
	if r := scrapectl(t, f, nil, "jobs", "get", "job-1", "--out", out2); r.code != 0 {
		t.Fatalf("jobs get --out: exit %d, err %v", r.code, r.err)
	}
	if got, _ := os.ReadFile(out2); !bytes.Equal(got, blob) {
		t.Errorf("jobs get --out wrote %d bytes", len(got))
	}
	g := newFakeAPI(t, state{status: "completed", dataURL: "redirect"})
	g.sync = true
	r = scrapectl(t, g, nil, "scrape", "big")
	if r.code != 0 || strings.TrimSpace(r.stdout) != string(blob) {
		t.Fatalf("stdout: exit %d, %d bytes, err %v", r.code, len(r.stdout), r.err)
	}

	// An expired URL is an HTTP error that says how to get a fresh one, and leaves no partial file.
	h := newFakeAPI(t, state{status: "completed", dataURL: f.srv.URL + "/nowhere"})
	h.sync = true
	out3 := filepath.Join(t.TempDir(), "expired.json")
	r = scrapectl(t, h, nil, "scrape", "big", "--out", out3)
	if r.code != exitHTTP || !strings.Contains(r.err.Error(), "GET the job again") {
		t.Fatalf("expired data_url: exit %d, err %v", r.code, r.err)
	}
	if _, err := os.Stat(out3); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed download left %s", out3)
	}
}

func TestScrapeExitCodes(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		st   state
		code int
		want string
	}{
		{state{status: "failed", err: "ValueError: bad url"}, exitFailed, "job job-1 failed: script_error: ValueError: bad url"},
		{state{status: "timeout", err: "ran out of time"}, exitTimeout, "job job-1 timed out"},
		{state{status: "cancelled"}, exitCancelled, "job job-1 was cancelled"},
	} {
		f := newFakeAPI(t, state{status: "running"}, c.st)
		r := scrapectl(t, f, nil, "scrape", "x")
		if r.code != c.code || r.err == nil || !strings.Contains(r.err.Error(), c.want) || r.stdout != "" {
			t.Errorf("%s: exit %d (want %d), err %v, stdout %q", c.st.status, r.code, c.code, r.err, r.stdout)
		}
		if r := scrapectl(t, f, nil, "jobs", "get", "job-1"); r.code != c.code || !strings.Contains(r.stdout, `"status": "`+c.st.status+`"`) {
			t.Errorf("jobs get %s: exit %d, stdout %q", c.st.status, r.code, r.stdout)
		}
	}

	f := newFakeAPI(t, state{status: "completed"})
	f.refuse, f.refuseCode = 422, "invalid_timeout"
	r := scrapectl(t, f, nil, "scrape", "x", "--timeout", "99999")
	if r.code != exitHTTP || !strings.Contains(r.err.Error(), "HTTP 422 invalid_timeout: refused by the test (request r1)") || f.posts != 1 {
		t.Errorf("422: exit %d, err %v, %d POSTs (a refusal is not retried)", r.code, r.err, f.posts)
	}

	f = newFakeAPI(t, state{status: "completed"})
	env := map[string]string{"SCRAPE_API_URL": f.srv.URL} // no token
	err := run(context.Background(), []string{"scrape", "x"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if exitCode(err) != exitHTTP || !strings.Contains(err.Error(), "HTTP 401") || !strings.Contains(err.Error(), "SCRAPE_TOKEN") {
		t.Errorf("no token: exit %d, err %v", exitCode(err), err)
	}

	// Unreachable: retried, then an HTTP error.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	env = map[string]string{"SCRAPE_API_URL": dead.URL, "SCRAPE_TOKEN": "tok"}
	term := &terminal{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, noRetryDelay: true}
	err = runTerminal(context.Background(), []string{"scrape", "x"}, func(k string) string { return env[k] }, term)
	if exitCode(err) != exitHTTP || !strings.Contains(err.Error(), "4 attempts") {
		t.Errorf("unreachable: exit %d, err %v", exitCode(err), err)
	}

	if r := scrapectl(t, newFakeAPI(t), nil, "jobs", "get", "nope"); r.code != exitHTTP || !strings.Contains(r.err.Error(), "404 job_not_found") {
		t.Errorf("unknown job: exit %d, err %v", r.code, r.err)
	}
}

// TestScrapeCtrlC: an interrupt while waiting asks, at a terminal, whether to cancel the job; yes sends
// DELETE /jobs/{id}; no, a second Ctrl-C, or no terminal leave the job running and print its id.
func TestScrapeCtrlC(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name        string
		interactive bool
		stdin       string
		second      bool // a second Ctrl-C at the prompt
		cancelled   bool
	}{
		{"yes", true, "y\n", false, true},
		{"no", true, "n\n", false, false},
		{"enter", true, "\n", false, false},
		{"second ctrl-c", true, "", true, false},
		{"no terminal", false, "y\n", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeAPI(t, state{status: "running"})
			interrupts := make(chan os.Signal, 2)
			stdin, stdinW := io.Pipe()
			term := &terminal{stdin: stdin, interactive: c.interactive, interrupts: interrupts}
			go func() {
				<-f.gotFirst
				interrupts <- os.Interrupt
				if c.second {
					time.Sleep(10 * time.Millisecond) // after the prompt reads; harmless if before
					interrupts <- os.Interrupt
				} else {
					io.WriteString(stdinW, c.stdin)
				}
			}()
			r := scrapectl(t, f, term, "scrape", "x", "--progress", "never")
			stdinW.Close()
			f.mu.Lock()
			deletes := f.deletes
			f.mu.Unlock()
			prompted := strings.Contains(r.stderr, "cancel job job-1? [y/N]")
			if prompted != c.interactive {
				t.Errorf("prompted %v, stderr %q", prompted, r.stderr)
			}
			if c.cancelled {
				if len(deletes) != 1 || deletes[0] != "job-1" || r.code != exitCancelled {
					t.Errorf("DELETEs %v, exit %d, err %v", deletes, r.code, r.err)
				}
				return
			}
			if len(deletes) != 0 || r.code != exitNotFinished || strings.TrimSpace(r.stdout) != "job-1" || !strings.Contains(r.err.Error(), "scrapectl jobs get job-1") {
				t.Errorf("DELETEs %v, exit %d, stdout %q, err %v", deletes, r.code, r.stdout, r.err)
			}
		})
	}
}

func TestScrapeWaitForRunsOut(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t, state{status: "queued"}, state{status: "running"})
	r := scrapectl(t, f, nil, "scrape", "x", "--wait-for", "0.2")
	if r.code != exitNotFinished || !strings.Contains(r.err.Error(), "still running after --wait-for 200ms") {
		t.Fatalf("exit %d, err %v", r.code, r.err)
	}
	if len(f.deletes) != 0 {
		t.Errorf("--wait-for cancelled the job: %v", f.deletes)
	}
}

func TestJobsCancel(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t, state{status: "running"})
	if r := scrapectl(t, f, nil, "scrape", "x", "--async"); r.code != 0 {
		t.Fatalf("submit: %v", r.err)
	}
	r := scrapectl(t, f, nil, "jobs", "cancel", "job-1")
	if r.code != exitCancelled || !strings.Contains(r.stdout, `"status": "cancelled"`) || len(f.deletes) != 1 {
		t.Fatalf("exit %d, stdout %q, DELETEs %v", r.code, r.stdout, f.deletes)
	}
	// Repeating it is harmless; a finished job stays as it finished.
	if r := scrapectl(t, f, nil, "jobs", "cancel", "job-1"); r.code != exitCancelled {
		t.Errorf("second cancel: exit %d", r.code)
	}
	g := newFakeAPI(t, state{status: "completed", data: `1`})
	g.sync = true
	scrapectl(t, g, nil, "scrape", "x")
	if r := scrapectl(t, g, nil, "jobs", "cancel", "job-1"); r.code != 0 || !strings.Contains(r.stdout, `"status": "completed"`) {
		t.Errorf("cancel of a completed job: exit %d, stdout %q", r.code, r.stdout)
	}
}

func TestScrapeUsageErrors(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t, state{status: "completed"})
	for _, args := range [][]string{
		{"scrape"},
		{"scrape", "a", "b"},
		{"scrape", "x", "--params", "[1]"},
		{"scrape", "x", "--params", "{"},
		{"scrape", "x", "--params", "null"},
		{"scrape", "x", "--timeout", "-1"},
		{"scrape", "x", "--async", "--out", "f.json"},
		{"scrape", "x", "--wait-for", "soon"},
		{"jobs"},
		{"jobs", "list"},
		{"jobs", "get"},
		{"jobs", "get", "a", "b"},
		{"jobs", "cancel", "a", "--out", "f.json"},
	} {
		if r := scrapectl(t, f, nil, args...); r.code != exitUsage {
			t.Errorf("%q: exit %d, err %v", args, r.code, r.err)
		}
	}
	if f.posts != 0 {
		t.Errorf("a usage error reached the API (%d POSTs)", f.posts)
	}
	env := map[string]string{"SCRAPE_API_URL": "ftp://x"}
	if err := run(context.Background(), []string{"jobs", "get", "a"}, func(k string) string { return env[k] }, io.Discard, io.Discard); exitCode(err) != exitUsage {
		t.Errorf("ftp URL: %v", err)
	}
}

// TestScrapeCtrlCWhileSubmitting: an interrupt before the API answered stops the submission and says how
// to find the job if it was accepted: the same Idempotency-Key.
func TestScrapeCtrlCWhileSubmitting(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body) // so the server notices when the client goes away
		got <- r.Header.Get("Idempotency-Key")
		<-r.Context().Done() // the gateway is still in its sync window
	}))
	t.Cleanup(srv.Close)
	interrupts := make(chan os.Signal, 1)
	var out, errOut bytes.Buffer
	term := &terminal{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, interrupts: interrupts, noRetryDelay: true}
	keys := make(chan string, 1)
	go func() {
		k := <-got
		keys <- k
		interrupts <- os.Interrupt
	}()
	env := map[string]string{"SCRAPE_API_URL": srv.URL, "SCRAPE_TOKEN": "tok"}
	err := runTerminal(context.Background(), []string{"scrape", "x"}, func(k string) string { return env[k] }, term)
	key := <-keys
	if exitCode(err) != exitNotFinished || !strings.Contains(err.Error(), "--idempotency-key "+key) || len(key) != 32 {
		t.Fatalf("exit %d, err %v (key %q)", exitCode(err), err, key)
	}
}
