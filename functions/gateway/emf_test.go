package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/scrapeplatform/platform/shared/auth"
)

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
	v, _ := auth.NewHS256(auth.HS256Config{Secret: []byte(testSecret)})
	h := New(testConfig(), Options{Broker: &fakeBroker{answer: completed, connected: true}, Authenticator: BearerAuth{Verifier: v},
		Logger: slog.New(slog.DiscardHandler), Recorder: NewEMF(&buf, "ScrapingPlatform", "test")})
	do(t, h, "POST", "/scrape", `{"script_name":"echo"}`, map[string]string{"Authorization": "Bearer " + token(t)})
	do(t, h, "POST", "/scrape", `{`, map[string]string{"Authorization": "Bearer " + token(t)})

	var scrapes, http4xx int
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
	}
	if scrapes != 1 || http4xx != 1 {
		t.Fatalf("want one completed scrape and one 4xx: got %d and %d in\n%s", scrapes, http4xx, buf.String())
	}
}
