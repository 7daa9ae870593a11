package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// Every response the end-to-end tests receive is checked against the OpenAPI document the gateway serves,
// so the document stays true: a field added, renamed or retyped in either place fails the suite.

var spec struct {
	once   sync.Once
	doc    *openapi3.T
	router routers.Router
	err    error

	mu   sync.Mutex
	seen map[string]bool // "METHOD path status" answered during the run
}

func loadSpec() (*openapi3.T, routers.Router, error) {
	spec.once.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromFile("../../functions/gateway/openapi.json")
		if err != nil {
			spec.err = err
			return
		}
		if err := doc.Validate(context.Background()); err != nil {
			spec.err = fmt.Errorf("openapi.json is not a valid OpenAPI document: %w", err)
			return
		}
		doc.Servers = nil // match any host
		spec.doc = doc
		spec.router, spec.err = legacy.NewRouter(doc)
		spec.seen = map[string]bool{}
	})
	return spec.doc, spec.router, spec.err
}

// checkAgainstSpec validates one real exchange against the document.
func checkAgainstSpec(t *testing.T, method, rawURL string, reqBody []byte, header http.Header, status int, body []byte) {
	t.Helper()
	doc, router, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(rawURL)
	req, _ := http.NewRequest(method, u.String(), bytes.NewReader(reqBody))
	req.Header.Set("Content-Type", "application/json")
	route, params, err := router.FindRoute(req)
	if err != nil {
		// Undocumented paths and methods must still answer with the documented error body.
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			t.Errorf("%s %s answered %d but is not in openapi.json: %v", method, u.Path, status, err)
			return
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			t.Errorf("%s %s: %d body is not JSON", method, u.Path, status)
			return
		}
		if err := doc.Components.Schemas["Error"].Value.VisitJSON(v); err != nil {
			t.Errorf("%s %s: %d body does not match the Error schema: %v", method, u.Path, status, err)
		}
		return
	}
	spec.mu.Lock()
	spec.seen[fmt.Sprintf("%s %s %d", route.Method, route.Path, status)] = true
	spec.mu.Unlock()
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: header, Body: io.NopCloser(bytes.NewReader(body)),
	}); err != nil {
		t.Errorf("%s %s answered %d with a body that breaks openapi.json: %v\nbody: %.500s", method, u.Path, status, err, body)
	}
}

// uncovered lists the documented (method, path, status) answers no test produced. Answers that need a
// broken broker or a worker that never answers (502, 503, 504) are produced by the gateway's own tests.
func uncovered() []string {
	doc, _, err := loadSpec()
	if err != nil {
		return []string{err.Error()}
	}
	var missing []string
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				if strings.HasPrefix(status, "5") {
					continue
				}
				key := fmt.Sprintf("%s %s %s", method, path, status)
				spec.mu.Lock()
				ok := spec.seen[key]
				spec.mu.Unlock()
				if !ok {
					missing = append(missing, key)
				}
			}
		}
	}
	sort.Strings(missing)
	return missing
}

// reportCoverage is called by TestMain after a full run.
func reportCoverage() int {
	if missing := uncovered(); len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "openapi.json documents answers no end-to-end test produced:\n  %s\n", strings.Join(missing, "\n  "))
		return 1
	}
	return 0
}

func TestDocsAreServed(t *testing.T) {
	e := start(t, 1)
	r := e.do(t, "GET", "/openapi.json", "", "")
	if r.Code != 200 || r.Body["openapi"] != "3.0.3" {
		t.Fatalf("openapi.json: %d %.200s", r.Code, r.Raw)
	}
	resp, err := http.Get(e.url + "/docs")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(page), `fetch("openapi.json")`) {
		t.Fatalf("docs page: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, tc := range []struct{ method, path string }{{"GET", "/nope"}, {"GET", "/scrape"}, {"DELETE", "/health"}} {
		if r := e.do(t, tc.method, tc.path, "", e.token); r.Code != 404 && r.Code != 405 {
			t.Errorf("%s %s: %d", tc.method, tc.path, r.Code)
		}
	}
	// GET /status without a token: the spec's aggregate (STATUS_PUBLIC, default true), as its own workflow test
	// expects; a bad token is still 401.
	if r := e.do(t, "GET", "/status", "", ""); r.Code != 200 || r.Body["status"] != "healthy" || r.Body["active_workers"] == nil || r.Body["task_queue"] != nil {
		t.Errorf("status without token: %d %s", r.Code, r.Raw)
	}
	if r := e.do(t, "GET", "/status", "", "not-a-token"); r.Code != 401 {
		t.Errorf("status with a bad token: %d", r.Code)
	}
}
