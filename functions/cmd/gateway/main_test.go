package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/functions/gateway"
	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/job"
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

// waitingBroker publishes and never answers. Unit tests only.
type waitingBroker struct{}

func (waitingBroker) Call(ctx context.Context, _ *contract.Request) (*contract.Reply, error) {
	broker.ReportPublished(ctx)
	<-ctx.Done()
	return nil, ctx.Err()
}
func (waitingBroker) Connected() bool { return true }
func (waitingBroker) Blocked() bool   { return false }
func (waitingBroker) Inspect(context.Context, string) (broker.QueueState, error) {
	return broker.QueueState{}, nil
}

type anyone struct{}

func (anyone) Authenticate(*http.Request) (gateway.Principal, error) {
	return gateway.Principal{Subject: "machine", Method: "iam"}, nil
}

// A job submitted under /iam is polled under /iam: its Location keeps the prefix.
func TestMachineJobsLocationKeepsThePrefix(t *testing.T) {
	cfg, err := gateway.LoadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	h := routes(gateway.New(cfg, gateway.Options{Broker: waitingBroker{}, Authenticator: anyone{}, Jobs: job.NewMemory(time.Hour, nil)}))
	for prefix, want := range map[string]string{"": "/jobs/", "/iam": "/iam/jobs/"} {
		r := httptest.NewRequest("POST", prefix+"/scrape", strings.NewReader(`{"script_name":"echo"}`))
		r.Header.Set("Prefer", "respond-async")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if loc := w.Header().Get("Location"); w.Code != 202 || !strings.HasPrefix(loc, want) {
			t.Errorf("POST %s/scrape: %d, Location %q, want %s…", prefix, w.Code, loc, want)
		}
	}
}
