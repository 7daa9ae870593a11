package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/local/stack"
	"github.com/scrapeplatform/platform/shared/auth"
	"github.com/scrapeplatform/platform/shared/proctest"
	"github.com/scrapeplatform/platform/shared/scripttest"
	"github.com/scrapeplatform/platform/test/rabbitmqtest"
	"github.com/scrapeplatform/platform/test/testkit"
)

const secret = "e2e-secret-e2e-secret-e2e-secret-0123"

// maxTimeout is the sync window (SCRAPE_SYNC_WAIT, 25 s by default, which the stack keeps): a stack without a
// job store answers 504 past it. For requests whose work (an environment build, say) takes however long a
// loaded machine needs.
const maxTimeout = 25

// env is one running stack and what a test needs to talk to it.
type env struct {
	stack   *stack.Stack
	url     string // gateway base URL
	token   string
	queue   string
	amqpURL string
	scripts string
	baseEnv []string
	out     *proctest.Output
}

// start brings up a gateway and n workers on a queue of their own, with the repository's scripts plus the
// test fixtures in one script folder.
func start(t *testing.T, workers int, extraEnv ...string) *env {
	t.Helper()
	amqpURL := rabbitmqtest.URL(t) // the local broker, or a container where only Docker is available
	queue := testkit.Queue(t, amqpURL, "e2e")

	scripts := t.TempDir()
	testkit.CopyTree(t, "../../scripts", scripts)
	scripttest.Copy(t, scripts, testkit.Scripts...)

	base := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"RABBITMQ_URL=" + amqpURL,
		"RABBITMQ_TASK_QUEUE=" + queue,
		"JWT_SECRET=" + secret,
		"SCRIPT_REPOSITORY_TYPE=local",
		"SCRIPT_REPOSITORY_URL=" + scripts,
		"WORKER_CONCURRENCY=3",
		"WORKER_WORK_DIR=" + t.TempDir(),
		"LOG_LEVEL=debug",
		// The tests' own sites run on loopback, which the worker's egress proxy refuses by default.
		"EGRESS_ALLOW=127.0.0.1",
	}
	if os.Geteuid() == 0 {
		// The fixtures report to the host (pid files in the test's folder), which a run's private /tmp under
		// the default namespaces containment would hide; worker/internal/runner's ns_test.go tests that.
		base = append(base, "SCRIPT_CONTAINMENT=pidns")
	} else {
		// The same for a non-root worker, which would make the namespaces in user namespaces of its own.
		base = append(base, "SCRIPT_CONTAINMENT=session")
	}
	base = append(base, extraEnv...)
	s, out := testkit.StartStack(t, binDir, workers, base)
	tok, err := auth.IssueHS256([]byte(secret), auth.Claims{Subject: "e2e"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &env{stack: s, url: s.GatewayURL(), token: tok, queue: queue, amqpURL: amqpURL, scripts: scripts, baseEnv: base, out: out}
}

// response is a decoded answer.
type response struct {
	Code   int
	Body   map[string]any
	Raw    string
	Header http.Header
}

func (e *env) do(t *testing.T, method, path, body, token string) response {
	t.Helper()
	return e.doWith(t, method, path, body, token, nil)
}

// doWith is do with more request headers (name, value pairs); the answer's headers are in response.Header.
func (e *env) doWith(t *testing.T, method, path, body, token string, headers []string) response {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	checkAgainstSpec(t, method, e.url+path, []byte(body), resp.Header, resp.StatusCode, raw)
	r := response{Code: resp.StatusCode, Raw: string(raw), Header: resp.Header}
	if err := json.Unmarshal(raw, &r.Body); err != nil {
		t.Fatalf("%s %s: %d, body is not JSON: %q", method, path, resp.StatusCode, raw)
	}
	return r
}

func (e *env) scrape(t *testing.T, script string, params any, timeout float64) response {
	t.Helper()
	body := map[string]any{"script_name": script, "parameters": params}
	if timeout > 0 {
		body["timeout"] = timeout
	}
	b, _ := json.Marshal(body)
	return e.do(t, "POST", "/scrape", string(b), e.token)
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie (state Z) has exited; only its parent has not reaped it yet.
	fields := strings.Fields(string(b))
	return len(fields) > 2 && fields[2] != "Z"
}
