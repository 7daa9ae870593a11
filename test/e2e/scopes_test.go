package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/auth"
)

// With JWT_SCOPES the gateway asks for one of those scopes on /scrape, /jobs and (with a token) /status, as API Gateway's route
// scopes do in AWS: a valid token without one is 403 forbidden; with one it is served.
func TestRequiredScopes(t *testing.T) {
	e := start(t, 1, "JWT_SCOPES=scrape:run,scrape:admin")
	scoped, err := auth.IssueHS256([]byte(secret), auth.Claims{Subject: "e2e", Scopes: []string{"status:read", "scrape:run"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"script_name":"echo","parameters":{"scoped":true}}`
	for _, c := range []struct{ method, path, body string }{{"POST", "/scrape", body}, {"GET", "/status", ""}} {
		if r := e.do(t, c.method, c.path, c.body, e.token); r.Code != http.StatusForbidden || r.Body["error_code"] != "forbidden" {
			t.Errorf("%s %s without a required scope: %d %s", c.method, c.path, r.Code, r.Raw)
		}
		if r := e.do(t, c.method, c.path, c.body, scoped); r.Code != http.StatusOK {
			t.Errorf("%s %s with scrape:run: %d %s", c.method, c.path, r.Code, r.Raw)
		}
	}
	// The job routes ask for the same scopes (this stack has no job store: with a scope, 503).
	for _, method := range []string{"GET", "DELETE"} {
		if r := e.do(t, method, "/jobs/some-job", "", e.token); r.Code != http.StatusForbidden || r.Body["error_code"] != "forbidden" {
			t.Errorf("%s /jobs without a required scope: %d %s", method, r.Code, r.Raw)
		}
		if r := e.do(t, method, "/jobs/some-job", "", scoped); r.Code != http.StatusServiceUnavailable || r.Body["error_code"] != "job_store_unavailable" {
			t.Errorf("%s /jobs with scrape:run and no job store: %d %s", method, r.Code, r.Raw)
		}
	}
}
