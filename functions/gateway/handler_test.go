package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/auth"
	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/testlog"
)

const testSecret = "0123456789abcdef0123456789abcdef-test"

// fakeBroker answers calls in-process. Unit tests only: the integration tests use a real RabbitMQ.
type fakeBroker struct {
	mu        sync.Mutex
	calls     []*contract.Request
	deadlines []time.Time // of the contexts Call was given (zero: none)
	answer    func(req contract.Request) (*contract.Reply, error)
	connected bool
	blocked   bool
	state     broker.QueueState
	notified  []string // NotifyCancel's request ids
}

func (f *fakeBroker) Call(ctx context.Context, req *contract.Request) (*contract.Reply, error) {
	deadline, _ := ctx.Deadline()
	f.mu.Lock()
	f.calls = append(f.calls, req)
	f.deadlines = append(f.deadlines, deadline)
	f.mu.Unlock()
	rep, err := f.answer(*req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			// Published, but no reply comes.
			broker.ReportPublished(ctx)
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return nil, err // not published
	}
	broker.ReportPublished(ctx)
	// The real client checks the reply as contract.ParseReply does.
	if err := rep.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", broker.ErrMalformedReply, err)
	}
	return rep, nil
}

func (f *fakeBroker) Connected() bool { return f.connected }

func (f *fakeBroker) NotifyCancel(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.notified = append(f.notified, id)
	return nil
}

func (f *fakeBroker) Blocked() bool { return f.blocked }

func (f *fakeBroker) Inspect(ctx context.Context, queue string) (broker.QueueState, error) {
	if !f.connected {
		return broker.QueueState{}, broker.ErrUnavailable
	}
	return f.state, nil
}

func completed(req contract.Request) (*contract.Reply, error) {
	return &contract.Reply{Version: contract.Version, RequestID: req.RequestID, Status: contract.StatusCompleted,
		Data: req.Parameters, ExecutionTime: 0.01, WorkerID: "w1", ScriptVersion: "sha256:abc"}, nil
}

func testConfig() Config {
	cfg, err := LoadConfig(func(string) string { return "" })
	if err != nil {
		panic(err)
	}
	return cfg
}

func newTestHandler(t *testing.T, fb *fakeBroker) *Handler {
	t.Helper()
	v, err := auth.NewHS256(auth.HS256Config{Secret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	return New(testConfig(), Options{Broker: fb, Authenticator: bearerAuth{Verifier: v}, Logger: testLogger(t)})
}

func token(t *testing.T) string {
	t.Helper()
	tok, err := auth.IssueHS256([]byte(testSecret), auth.Claims{Subject: "tester"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func do(t *testing.T, h http.Handler, method, path, body string, headers map[string]string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var m map[string]any
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: content type %q, body %q", method, path, ct, w.Body.String())
	}
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("%s %s: body is not JSON: %q", method, path, w.Body.String())
	}
	return w, m
}

func TestScrapeValidation(t *testing.T) {
	t.Parallel()
	fb := &fakeBroker{answer: completed, connected: true}
	h := newTestHandler(t, fb)
	auth := map[string]string{"Authorization": "Bearer " + token(t)}
	for _, tc := range []struct {
		name, body string
		status     int
		mention    string
	}{
		{"empty", ``, 400, "empty"},
		{"not json", `hello`, 400, "not valid JSON"},
		{"truncated", `{"script_name": "x"`, 400, "not valid JSON"},
		{"array", `[1,2]`, 400, "JSON object"},
		{"unknown field", `{"script_name":"x","scriptname":"y"}`, 400, `"scriptname"`},
		{"wrong type", `{"script_name": 5}`, 400, `"script_name" must be a string`},
		{"trailing", `{"script_name":"x"} {}`, 400, "exactly one"},
		{"missing name", `{"parameters":{}}`, 422, "script_name is required"},
		{"traversal", `{"script_name":"../etc"}`, 422, "not valid"},
		{"params array", `{"script_name":"x","parameters":[1]}`, 422, "parameters must be a JSON object"},
		{"timeout string", `{"script_name":"x","timeout":"5"}`, 422, "timeout must be a number"},
		{"timeout zero", `{"script_name":"x","timeout":0}`, 422, "between"},
		{"timeout too long", `{"script_name":"x","timeout":3600}`, 422, "between"},
		{"duplicate key", `{"script_name":"echo","script_name":"other"}`, 400, `duplicate key "script_name" in the request body`},
		{"duplicate escaped key", `{"script_name":"echo","\u0073cript_name":"other"}`, 400, `duplicate key "script_name"`},
		{"duplicate nested key", `{"script_name":"echo","parameters":{"a":{"b":1,"b":2}}}`, 400, `duplicate key "b" in the request body.parameters.a`},
		{"upper-case key", `{"SCRIPT_NAME":"echo"}`, 400, `unknown field "SCRIPT_NAME"; field names are case-sensitive`},
		{"long s key", `{"ſcript_name":"echo"}`, 400, `unknown field "ſcript_name"`},
		{"kelvin key", `{"script_name":"echo","\u212aimeout":1}`, 400, `unknown field`},
		{"case-folded twin", `{"script_name":"echo","Script_Name":"x"}`, 400, `unknown field "Script_Name"`},
		{"huge integer", `{"script_name":"echo","parameters":{"n":` + strings.Repeat("7", 5000) + `}}`, 422, "parameters.n: integer 7777"},
		{"integer beyond 2^53", `{"script_name":"echo","parameters":{"ids":[9007199254740993]}}`, 422, "parameters.ids[0]: integer 9007199254740993 is beyond ±2^53"},
		{"float out of range", `{"script_name":"echo","parameters":{"x":1e999}}`, 422, "out of range"},
		{"timeout finer than ms", `{"script_name":"echo","timeout":2.0000000001}`, 422, "whole number of milliseconds"},
		{"timeout just above max", `{"script_name":"echo","timeout":900.001}`, 422, "between 0.1 and 900 seconds"},
		{"callback_url not a string", `{"script_name":"echo","callback_url":5}`, 400, `field "callback_url" must be a string`},
		{"callback_url empty", `{"script_name":"echo","callback_url":""}`, 422, "callback_url is empty"},
		{"too large", `{"script_name":"x","parameters":{"a":"` + strings.Repeat("a", 300*1024) + `"}}`, 413, "larger than"},
		{"ok", `{"script_name":"echo","parameters":{"a":1},"timeout":2.5}`, 200, ""},
		{"ok strict edges", `{"script_name":"echo","parameters":{"a":1,"A":2,"n":-9007199254740992,"f":1e300,"o":[{"k":1},{"k":2}]},"timeout":1.001}`, 200, ""},
		{"ok defaults", `{"script_name":"echo"}`, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, m := do(t, h, "POST", "/scrape", tc.body, auth)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.status != 200 {
				if m["error_code"] == nil || !strings.Contains(m["error"].(string), tc.mention) {
					t.Fatalf("error %q does not mention %q", m["error"], tc.mention)
				}
			}
		})
	}
}

func TestScrapeMapsReplyAndBuildsRequest(t *testing.T) {
	t.Parallel()
	fb := &fakeBroker{answer: completed, connected: true}
	h := newTestHandler(t, fb)
	now := time.Now()
	h.now = func() time.Time { return now } // a stopped clock: the deadline arithmetic is exact
	w, m := do(t, h, "POST", "/scrape", `{"script_name":"echo","parameters":{"a":1},"timeout":3}`, map[string]string{"Authorization": "Bearer " + token(t)})
	if w.Code != 200 || m["status"] != "completed" || m["worker_id"] != "w1" || m["script_version"] != "sha256:abc" {
		t.Fatalf("response %d %v", w.Code, m)
	}
	if m["data"].(map[string]any)["a"] != float64(1) || m["error"] != nil || m["error_code"] != nil {
		t.Fatalf("data/error: %v", m)
	}
	req := fb.calls[0]
	msg, err := req.Publishing(now) // as the RPC client maps it
	if err != nil {
		t.Fatal(err)
	}
	if req.RequestID != m["request_id"] || msg.CorrelationId != req.RequestID || req.Subject != "tester" || req.Timeout != 3 {
		t.Fatalf("request %+v / msg %+v", req, msg)
	}
	// Deadline = timeout + grace; expiration is the time left to it; the call waits until it and no longer.
	want := now.Add(3*time.Second + testConfig().ReplyGrace)
	if !req.Deadline.Equal(want) {
		t.Fatalf("deadline %v after start, want %v", req.Deadline.Sub(now), want.Sub(now))
	}
	if wantExp := strconv.FormatInt(want.Sub(now).Milliseconds(), 10); msg.Expiration != wantExp {
		t.Fatalf("expiration %q ms, want %s", msg.Expiration, wantExp)
	}
	if got := fb.deadlines[0]; !got.Equal(want) {
		t.Fatalf("the call's context has deadline %v after start, want %v", got.Sub(now), want.Sub(now))
	}
	t.Logf("deadline %v after start; the request took %v", req.Deadline.Sub(now), time.Since(now).Round(time.Millisecond))
}

func TestScrapeFailureStatuses(t *testing.T) {
	t.Parallel()
	hdr := map[string]string{"Authorization": "Bearer " + token(t)}
	for _, tc := range []struct {
		name   string
		answer func(contract.Request) (*contract.Reply, error)
		status int
		code   string
	}{
		{"script failed is still 200", func(r contract.Request) (*contract.Reply, error) {
			rep := contract.Failed(&r, contract.CodeScriptError, "boom")
			rep.Version, rep.Error.Type = contract.Version, "ValueError"
			return rep, nil
		}, 200, "script_error"},
		{"broker down", func(contract.Request) (*contract.Reply, error) { return nil, broker.ErrUnavailable }, 503, "broker_unavailable"},
		{"queue full", func(contract.Request) (*contract.Reply, error) { return nil, broker.ErrNacked }, 429, "queue_full"},
		{"no worker", func(contract.Request) (*contract.Reply, error) { return nil, context.DeadlineExceeded }, 504, "no_worker_response"},
		{"malformed reply", func(r contract.Request) (*contract.Reply, error) {
			return &contract.Reply{Version: contract.Version, RequestID: r.RequestID, Status: "weird"}, nil
		}, 502, "internal_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newTestHandler(t, &fakeBroker{answer: tc.answer, connected: true})
			w, m := do(t, h, "POST", "/scrape", `{"script_name":"echo","timeout":0.2}`, hdr)
			if w.Code != tc.status || m["error_code"] != tc.code {
				t.Fatalf("got %d %v, want %d %s", w.Code, m, tc.status, tc.code)
			}
			if (w.Code == 429 || w.Code == 503) && w.Header().Get("Retry-After") == "" {
				t.Errorf("%d without Retry-After", w.Code)
			}
		})
	}
}

func TestAuthAndRoutes(t *testing.T) {
	t.Parallel()
	fb := &fakeBroker{answer: completed, connected: true, state: broker.QueueState{Messages: 4, Consumers: 2}}
	h := newTestHandler(t, fb)
	body := `{"script_name":"echo"}`
	other, _ := auth.IssueHS256([]byte("another-secret-another-secret-0123456789"), auth.Claims{Subject: "x"}, time.Hour)
	expired, _ := auth.IssueHS256([]byte(testSecret), auth.Claims{Subject: "x"}, -time.Hour)
	for _, tc := range []struct {
		name   string
		header string
	}{{"none", ""}, {"not bearer", "Basic dXNlcjpwYXNz"}, {"garbage", "Bearer garbage"}, {"wrong key", "Bearer " + other}, {"expired", "Bearer " + expired}} {
		w, m := do(t, h, "POST", "/scrape", body, map[string]string{"Authorization": tc.header})
		if w.Code != 401 || m["error_code"] != "unauthorized" || w.Header().Get("WWW-Authenticate") == "" || !isRequestID(m["request_id"]) {
			t.Errorf("%s: got %d %v", tc.name, w.Code, m)
		}
	}
	if len(fb.calls) != 0 {
		t.Fatal("an unauthenticated request reached the broker")
	}

	w, m := do(t, h, "GET", "/status", "", map[string]string{"Authorization": "Bearer " + token(t)})
	if w.Code != 200 || m["queue_length"] != float64(4) || m["active_workers"] != float64(2) {
		t.Fatalf("status: %d %v", w.Code, m)
	}
	for _, k := range []string{"memory_usage", "cpu_usage", "dead_letter_queue_length"} {
		if _, ok := m[k]; !ok {
			t.Errorf("status lacks %s", k)
		}
	}
	// Without a token, the spec's aggregate figures only (STATUS_PUBLIC, default true).
	w, m = do(t, h, "GET", "/status", "", nil)
	if w.Code != 200 || m["status"] != "healthy" || m["queue_length"] != float64(4) || m["active_workers"] != float64(2) {
		t.Fatalf("status without token: %d %v", w.Code, m)
	}
	for _, k := range []string{"dead_letter_queue_length", "task_queue", "rabbitmq"} {
		if _, ok := m[k]; ok {
			t.Errorf("status without token shows %s", k)
		}
	}
	if w, _ := do(t, h, "GET", "/status", "", map[string]string{"Authorization": "Bearer nonsense"}); w.Code != 401 {
		t.Errorf("status with a bad token: %d, want 401", w.Code)
	}
	if _, ok := m["in_flight"]; ok {
		t.Error("status shows in_flight without a capacity reader")
	}
	// With the management API, the workers' in-flight tasks and capacity, to anyone.
	hc := New(testConfig(), Options{Broker: fb, Authenticator: bearerAuth{}, Capacity: fakeCapacity{inFlight: 37, capacity: 300}})
	if w, m := do(t, hc, "GET", "/status", "", nil); w.Code != 200 || m["in_flight"] != float64(37) || m["capacity"] != float64(300) {
		t.Errorf("status with a capacity reader: %d %v", w.Code, m)
	}
	hf := New(testConfig(), Options{Broker: fb, Authenticator: bearerAuth{}, Capacity: fakeCapacity{err: errors.New("management API down")}})
	if w, m := do(t, hf, "GET", "/status", "", nil); w.Code != 200 || m["in_flight"] != nil || m["active_workers"] != float64(2) {
		t.Errorf("status with a failing capacity reader: %d %v; want the rest without in_flight", w.Code, m)
	}
	closed := testConfig()
	closed.StatusPublic = false
	if w, _ := do(t, New(closed, Options{Broker: fb, Authenticator: bearerAuth{}}), "GET", "/status", "", nil); w.Code != 401 {
		t.Errorf("status without token, STATUS_PUBLIC=false: %d", w.Code)
	}
	w, m = do(t, h, "GET", "/health", "", nil)
	if w.Code != 200 || m["status"] != "healthy" || m["components"].(map[string]any)["rabbitmq"] != "connected" {
		t.Fatalf("health: %d %v", w.Code, m)
	}
	if w, m := do(t, h, "GET", "/scrape", "", nil); w.Code != 405 || m["error_code"] != "method_not_allowed" || !isRequestID(m["request_id"]) {
		t.Errorf("GET /scrape: %d %v", w.Code, m)
	}
	if w, m := do(t, h, "GET", "/nope", "", nil); w.Code != 404 || m["error_code"] != "not_found" || !isRequestID(m["request_id"]) {
		t.Errorf("GET /nope: %d %v", w.Code, m)
	}

	fb.blocked = true
	if w, m := do(t, h, "GET", "/health", "", nil); w.Code != 503 || m["status"] != "unhealthy" || m["components"].(map[string]any)["rabbitmq"] != "blocked" {
		t.Errorf("health while the broker blocks publishers: %d %v", w.Code, m)
	}
	fb.blocked = false
	fb.connected = false
	if w, m := do(t, h, "GET", "/health", "", nil); w.Code != 503 || m["status"] != "unhealthy" || m["components"].(map[string]any)["rabbitmq"] != "disconnected" {
		t.Errorf("health while disconnected: %d %v", w.Code, m)
	}
	if w, m := do(t, h, "GET", "/status", "", map[string]string{"Authorization": "Bearer " + token(t)}); w.Code != 503 || m["error_code"] != "broker_unavailable" {
		t.Errorf("status while disconnected: %d %v", w.Code, m)
	}
}

// With required scopes, a valid token without any of them is 403 forbidden; one of them is enough.
func TestScopesAreRequiredWhenSet(t *testing.T) {
	t.Parallel()
	v, err := auth.NewHS256(auth.HS256Config{Secret: []byte(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBroker{connected: true, answer: func(req contract.Request) (*contract.Reply, error) {
		return &contract.Reply{Version: contract.Version, RequestID: req.RequestID, Status: contract.StatusCompleted, WorkerID: "w"}, nil
	}}
	h := New(testConfig(), Options{Broker: fb, Authenticator: bearerAuth{Verifier: v, Scopes: []string{"scrape:run", "scrape:admin"}}})
	bearer := func(scopes ...string) map[string]string {
		tok, err := auth.IssueHS256([]byte(testSecret), auth.Claims{Subject: "s", Scopes: scopes}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return map[string]string{"Authorization": "Bearer " + tok}
	}
	for _, path := range []string{"/scrape", "/status"} {
		method, body := "POST", `{"script_name":"echo"}`
		if path == "/status" {
			method, body = "GET", ""
		}
		for name, hdr := range map[string]map[string]string{"no scope": bearer(), "another scope": bearer("status:read")} {
			w, m := do(t, h, method, path, body, hdr)
			if w.Code != 403 || m["error_code"] != "forbidden" || !strings.Contains(m["error"].(string), "scrape:run") || !isRequestID(m["request_id"]) {
				t.Errorf("%s %s, %s: %d %v", method, path, name, w.Code, m)
			}
		}
		if w, m := do(t, h, method, path, body, bearer("other", "scrape:admin")); w.Code != 200 {
			t.Errorf("%s %s with a required scope: %d %v", method, path, w.Code, m)
		}
	}
}

// A verifier that cannot reach the identity provider's keys makes a 503 with Retry-After, not a 401: the
// caller's token may be fine.
func TestUnavailableKeysAre503(t *testing.T) {
	t.Parallel()
	v, err := auth.NewJWKS(auth.JWKSConfig{URL: "http://127.0.0.1:1/jwks.json", Issuer: "https://idp.test/", Audience: "api"})
	if err != nil {
		t.Fatal(err)
	}
	h := New(testConfig(), Options{Broker: &fakeBroker{connected: true}, Authenticator: bearerAuth{Verifier: v}})
	tok := "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ4In0.c2ln"
	w, m := do(t, h, "POST", "/scrape", `{"script_name":"echo"}`, map[string]string{"Authorization": "Bearer " + tok})
	if w.Code != 503 || m["error_code"] != "auth_unavailable" || w.Header().Get("Retry-After") == "" || !isRequestID(m["request_id"]) {
		t.Fatalf("%d %v Retry-After %q", w.Code, m, w.Header().Get("Retry-After"))
	}
}

// FuzzDecodeScrapeBody: request bodies are untrusted input; the parser must never panic, and anything it
// accepts and validates must make a publishable request.
func FuzzDecodeScrapeBody(f *testing.F) {
	for _, s := range []string{`{"script_name":"echo","parameters":{"a":[1,2]},"timeout":5}`, `{"script_name":null}`, `{"timeout":1e400}`, `[]`, `{"parameters":"x"}`, "{\"script_name\":\"\\u0000\"}",
		// Strict input (issue 11): duplicate and case-folded keys, integers beyond 2^53, sub-millisecond timeouts.
		`{"script_name":"echo","script_name":"x"}`, `{"ſcript_name":"echo"}`, `{"script_name":"echo","TIMEOUT":1}`,
		`{"script_name":"echo","parameters":{"a":1,"\u0061":2}}`, `{"script_name":"echo","parameters":{"n":9007199254740993}}`,
		`{"script_name":"echo","parameters":{"n":-9007199254740992,"A":1,"a":2}}`, `{"script_name":"echo","timeout":24.0000000001}`,
		`{"script_name":"echo","timeout":1.001}`, `{"script_name":"echo","parameters":{"x":[{"k":1},{"k":1}]}}`,
		`{"script_name":"echo","callback_url":"https://hooks.example.com/x"}`, `{"script_name":"echo","callback_url":7}`} {
		f.Add([]byte(s))
	}
	h := New(testConfig(), Options{Broker: &fakeBroker{}, Authenticator: bearerAuth{}})
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := decodeScrapeBody(body)
		if err != nil {
			return
		}
		in, err := h.validateScrape(b)
		req := in.req
		if err != nil {
			return
		}
		// Accepted: every key appears once and the top-level ones are spelled exactly.
		if contract.CheckDuplicateKeys(body, "body") != nil {
			t.Fatalf("accepted body %q has a duplicate key", body)
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(body, &top) == nil {
			for k := range top {
				if k != "script_name" && k != "parameters" && k != "timeout" && k != "callback_url" {
					t.Fatalf("accepted body %q has field %q", body, k)
				}
			}
		}
		req.RequestID, req.Deadline = "id", time.Now().Add(time.Minute)
		if err := req.Validate(); err != nil {
			t.Fatalf("accepted body %q gives an invalid request: %v", body, err)
		}
		if _, err := req.Publishing(time.Now()); err != nil {
			t.Fatalf("accepted body %q cannot be published: %v", body, err)
		}
	})
}

// A body that stops arriving before the server's read deadline is answered 408 request_timeout.
func TestStalledBodyIs408(t *testing.T) {
	t.Parallel()
	fb := &fakeBroker{answer: completed, connected: true}
	h := newTestHandler(t, fb)
	r := httptest.NewRequest("POST", "/scrape", io.MultiReader(strings.NewReader(`{"script_name":`), deadlineReader{}))
	r.Header.Set("Authorization", "Bearer "+token(t))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var m map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &m)
	if w.Code != http.StatusRequestTimeout || m["error_code"] != "request_timeout" || m["request_id"] == "" || len(fb.calls) != 0 {
		t.Fatalf("%d %v", w.Code, m)
	}
}

// deadlineReader fails as a connection does when its read deadline passes.
type deadlineReader struct{}

func (deadlineReader) Read([]byte) (int, error) {
	return 0, fmt.Errorf("read tcp: %w", os.ErrDeadlineExceeded)
}

func testLogger(t *testing.T) *slog.Logger { return testlog.New(t, slog.LevelInfo) }

// isRequestID reports whether v is a request id as the handler makes them: a version 4 UUID.
func isRequestID(v any) bool {
	s, ok := v.(string)
	return ok && len(s) == 36 && s[14] == '4' && strings.Count(s, "-") == 4
}

// fakeCapacity is a CapacityReader with fixed figures.
type fakeCapacity struct {
	inFlight, capacity int64
	err                error
}

func (f fakeCapacity) Capacity(context.Context, string) (int64, int64, error) {
	return f.inFlight, f.capacity, f.err
}
