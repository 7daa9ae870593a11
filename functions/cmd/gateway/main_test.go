package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRoutesServeTheMachinePrefix(t *testing.T) {
	var seen []string
	h := routes(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = append(seen, r.Method+" "+r.URL.Path) }))
	for _, tc := range []struct{ method, path, want string }{
		{"POST", "/scrape", "POST /scrape"},
		{"GET", "/health", "GET /health"},
		{"POST", "/iam/scrape", "POST /scrape"},
		{"GET", "/iam/status", "GET /status"},
		{"GET", "/iamx/status", "GET /iamx/status"},
	} {
		seen = nil
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(tc.method, tc.path, nil))
		if len(seen) != 1 || seen[0] != tc.want {
			t.Errorf("%s %s reached the handler as %v, want [%s]", tc.method, tc.path, seen, tc.want)
		}
	}
}
