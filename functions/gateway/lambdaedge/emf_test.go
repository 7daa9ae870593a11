package lambdaedge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/scrapeplatform/platform/functions/gateway"
	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/job"
)

// echoBroker answers every call at once with a completed reply. Unit tests only.
type echoBroker struct{}

func (echoBroker) Call(_ context.Context, req *contract.Request) (*contract.Reply, error) {
	return &contract.Reply{Version: contract.Version, RequestID: req.RequestID, Status: contract.StatusCompleted, WorkerID: "w1"}, nil
}
func (echoBroker) Connected() bool { return true }
func (echoBroker) Blocked() bool   { return false }
func (echoBroker) Inspect(context.Context, string) (broker.QueueState, error) {
	return broker.QueueState{}, nil
}

// anyone lets every request in, as API Gateway's authorizer would have.
type anyone struct{}

func (anyone) Authenticate(*http.Request) (gateway.Principal, error) {
	return gateway.Principal{Subject: "tester", Method: "apigateway-jwt"}, nil
}

// checkEMF validates one line against the Embedded Metric Format rules CloudWatch applies, and returns it.
func checkEMF(t *testing.T, line []byte, namespace string) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(line, &doc); err != nil {
		t.Fatalf("EMF line is not JSON: %q", line)
	}
	meta, ok := doc["_aws"].(map[string]any)
	if !ok {
		t.Fatalf("no _aws: %s", line)
	}
	if ts, ok := meta["Timestamp"].(float64); !ok || ts < 1e12 {
		t.Fatalf("Timestamp must be epoch milliseconds: %s", line)
	}
	directives, _ := meta["CloudWatchMetrics"].([]any)
	if len(directives) == 0 {
		t.Fatalf("no CloudWatchMetrics: %s", line)
	}
	for _, d := range directives {
		dir := d.(map[string]any)
		if dir["Namespace"] != namespace {
			t.Fatalf("namespace %v: %s", dir["Namespace"], line)
		}
		for _, set := range dir["Dimensions"].([]any) {
			names := set.([]any)
			if len(names) == 0 || len(names) > 30 {
				t.Fatalf("dimension set size %d: %s", len(names), line)
			}
			for _, n := range names {
				if _, ok := doc[n.(string)].(string); !ok {
					t.Fatalf("dimension %v has no string value: %s", n, line)
				}
			}
		}
		for _, m := range dir["Metrics"].([]any) {
			name := m.(map[string]any)["Name"].(string)
			if _, ok := doc[name].(float64); !ok {
				t.Fatalf("metric %s has no numeric value: %s", name, line)
			}
		}
	}
	return doc
}

func TestEMFLinesFromAScrape(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	cfg, err := gateway.LoadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	h := gateway.New(cfg, gateway.Options{Broker: echoBroker{}, Authenticator: anyone{},
		Logger: slog.New(slog.DiscardHandler), Recorder: NewEMF(&buf, "ScrapingPlatform", "test"), Jobs: job.NewMemory(0, nil)})
	for _, body := range []string{`{"script_name":"echo"}`, `{`} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/scrape", strings.NewReader(body)))
	}

	var scrapes, http4xx, jobs int
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		doc := checkEMF(t, sc.Bytes(), "ScrapingPlatform")
		if doc["Stage"] != "test" {
			t.Fatalf("stage %v", doc["Stage"])
		}
		if doc["Scrapes"] == float64(1) && doc["Outcome"] == "completed" {
			scrapes++
		}
		if doc["HTTPRequests"] == float64(1) && doc["StatusClass"] == "4xx" && doc["Route"] == "POST /scrape" {
			http4xx++
		}
		if doc["JobsAccepted"] == float64(1) && doc["Mode"] == "sync" {
			jobs++
		}
	}
	if scrapes != 1 || http4xx != 1 || jobs != 1 {
		t.Fatalf("want one completed scrape, one 4xx and one job answered in the sync window: got %d, %d and %d in\n%s", scrapes, http4xx, jobs, buf.String())
	}
}
