package e2e

import (
	"context"
	"encoding/json"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// chromium returns a headless Chromium to load pages with: CHROMIUM, else chromium or chromium-browser on
// PATH. .ci/run installs Debian's chromium package.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("this test loads /docs in a real browser and needs Chromium: apt-get install chromium (or set CHROMIUM to its path)")
	return ""
}

// headless loads url in headless Chromium (scripts run, for up to 10 s of virtual time) and returns the DOM
// as it is then. Only loopback is contacted: background networking is off.
func headless(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
		"--user-data-dir=" + t.TempDir(), "--virtual-time-budget=10000"}
	cmd := exec.CommandContext(ctx, chromium(t), append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %q: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// The docs page is browsable: in a real browser its script fetches openapi.json and renders one entry per
// operation of the document, with the secured ones marked.
func TestDocsPageRendersInABrowser(t *testing.T) {
	e := start(t, 1)
	doc, _, err := loadSpec()
	if err != nil {
		t.Fatal(err)
	}
	dom := headless(t, "--dump-dom", e.url+"/docs")
	if rendered, _, _ := strings.Cut(dom, "<script>"); !strings.Contains(rendered, `<div id="ops"><details class="op"`) {
		t.Fatalf("the page did not render the document:\n%.3000s", rendered)
	}
	if want := "<h1 id=\"title\">" + doc.Info.Title + " " + doc.Info.Version + "</h1>"; !strings.Contains(dom, want) {
		t.Errorf("title: want %s in\n%.500s", want, dom)
	}
	ops := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			ops++
			entry := regexp.MustCompile(`<summary><span class="method ` + strings.ToLower(method) + `">` + method +
				`</span><code>` + regexp.QuoteMeta(path) + `</code>(<span class="lock">bearer token( optional)?</span>)?</summary>`)
			m := entry.FindStringSubmatch(dom)
			if m == nil {
				t.Errorf("no entry for %s %s", method, path)
				continue
			}
			secured := op.Security != nil && len(*op.Security) > 0 || op.Security == nil && len(doc.Security) > 0
			if (m[1] != "") != secured {
				t.Errorf("%s %s: marked secured=%v, document says %v", method, path, m[1] != "", secured)
			}
			// A requirement list with an empty requirement ({}) makes the token optional (GET /status).
			optional := false
			if op.Security != nil {
				for _, req := range *op.Security {
					optional = optional || len(req) == 0
				}
			}
			if (m[2] != "") != optional {
				t.Errorf("%s %s: marked optional=%v, document says %v", method, path, m[2] != "", optional)
			}
		}
	}
	if got := strings.Count(dom, `<details class="op"`); got != ops {
		t.Errorf("%d entries rendered, the document has %d operations", got, ops)
	}
	if !strings.Contains(dom, "script_name") || !strings.Contains(dom, "Request body") {
		t.Error("the scrape request body is not described")
	}
	// The example request the page shows is one the API accepts.
	_, afterBody, _ := strings.Cut(dom, "<h4>Request body</h4>")
	_, example, _ := strings.Cut(afterBody, "<pre>")
	example, _, _ = strings.Cut(example, "</pre>")
	var v any
	if err := json.Unmarshal([]byte(html.UnescapeString(example)), &v); err != nil {
		t.Errorf("example request %q: %v", example, err)
	} else if err := doc.Paths.Find("/scrape").Post.RequestBody.Value.Content["application/json"].Schema.Value.VisitJSON(v); err != nil {
		t.Errorf("the example request the page shows is invalid: %v\n%s", err, example)
	}
	if !strings.Contains(dom, `<details class="op" open=""><summary><span class="method post">POST</span><code>/scrape</code>`) {
		t.Error("POST /scrape does not start open")
	}
	// A screenshot for people reviewing the page (kept when DOCS_SCREENSHOT names a file).
	if shot := os.Getenv("DOCS_SCREENSHOT"); shot != "" {
		abs, _ := filepath.Abs(shot)
		headless(t, "--screenshot="+abs, "--window-size=1200,1400", e.url+"/docs")
	}
}
