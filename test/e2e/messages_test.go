package e2e

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/scrapeplatform/platform/shared/proctest"
)

// TestErrorsSayWhatToDo runs what a new user meets first against one stack whose workers may reach the
// bundled demo page and nothing else on this machine: the offline quick start's scrape of the demo page;
// egress refusals that name the target, the reason and the EGRESS_ALLOW entry, for http:// and https://
// alike, in the reply's error (the traceback in error_detail); a name that does not resolve reported as
// such, not as a permission problem; and a 401 that names its request.
func TestErrorsSayWhatToDo(t *testing.T) {
	demo := httptest.NewServer(http.FileServer(http.Dir("../../local/demo")))
	t.Cleanup(demo.Close)
	e := start(t, 1, "EGRESS_ALLOW="+demo.Listener.Addr().String())
	refused := proctest.FreeAddr(t) // loopback, not on the allow list
	// A name longer than DNS allows (a 64-character label) does not resolve, and its lookup never leaves
	// this machine: the tests send traffic to loopback only.
	unresolvable := strings.Repeat("x", 64) + ".example"

	t.Run("the demo page of the quick start", func(t *testing.T) {
		r := e.scrape(t, "example_scraper", map[string]any{"url": demo.URL + "/"}, 10)
		data, _ := r.Body["data"].(map[string]any)
		if r.Code != 200 || r.Body["status"] != "completed" || data["title"] != "Scrape platform demo page" {
			t.Fatalf("got %d %s", r.Code, r.Raw)
		}
	})

	tests := []struct {
		name, url, errorType string
		want                 []string
		hide                 []string
	}{
		{"loopback over http", "http://" + refused + "/", "PermissionError",
			[]string{"egress proxy refused " + refused, "127.0.0.1 is a loopback address", "EGRESS_ALLOW=" + refused}, nil},
		{"loopback over https", "https://" + refused + "/", "URLError",
			[]string{"Tunnel connection failed: 403 Forbidden: egress proxy refused " + refused, "127.0.0.1 is a loopback address", "EGRESS_ALLOW=" + refused}, nil},
		{"unresolvable name over http", "http://" + unresolvable + "/", "URLError",
			[]string{"egress proxy cannot reach " + unresolvable + ":80", unresolvable + " does not resolve"}, []string{"403", "refused", "Permission"}},
		{"unresolvable name over https", "https://" + unresolvable + "/", "URLError",
			[]string{"502 Bad Gateway: egress proxy cannot reach " + unresolvable + ":443", unresolvable + " does not resolve"}, []string{"403", "refused", "Permission"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.scrape(t, "example_scraper", map[string]any{"url": tt.url}, 10)
			msg, _ := r.Body["error"].(string)
			detail, _ := r.Body["error_detail"].(string)
			if r.Code != 200 || r.Body["status"] != "failed" || r.Body["error_code"] != "script_error" || r.Body["error_type"] != tt.errorType {
				t.Fatalf("got %d %s", r.Code, r.Raw)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q lacks %q", msg, w)
				}
			}
			for _, h := range tt.hide {
				if strings.Contains(msg, h) {
					t.Errorf("error %q says %q", msg, h)
				}
			}
			if strings.Contains(msg, "Traceback") || !strings.Contains(detail, "Traceback") {
				t.Errorf("the traceback belongs in error_detail, not error: error %q, error_detail %q", msg, detail)
			}
		})
	}

	t.Run("401 names its request", func(t *testing.T) {
		for _, token := range []string{"", "garbage"} {
			r := e.do(t, "POST", "/scrape", `{"script_name":"example_scraper"}`, token)
			if id, _ := r.Body["request_id"].(string); r.Code != 401 || r.Body["error_code"] != "unauthorized" || id == "" {
				t.Fatalf("token %q: got %d %s", token, r.Code, r.Raw)
			}
		}
	})
}
