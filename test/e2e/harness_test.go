package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/local/stack"
	"github.com/scrapeplatform/platform/shared/auth"
	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/brokertest"
	"github.com/scrapeplatform/platform/test/rabbitmqtest"
)

const secret = "e2e-secret-e2e-secret-e2e-secret-0123"

// env is one running stack and what a test needs to talk to it.
type env struct {
	stack   *stack.Stack
	url     string // gateway base URL
	token   string
	queue   string
	amqpURL string
	scripts string
	baseEnv []string
	out     *logBuffer
}

// logBuffer keeps every process's output for assertions and shows it in the test log on failure.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// start brings up a gateway and n workers on a queue of their own, with the repository's scripts plus the
// test fixtures in one script folder.
func start(t *testing.T, workers int, extraEnv ...string) *env {
	t.Helper()
	amqpURL := rabbitmqtest.URL(t) // the local broker, or a container where only Docker is available
	queue := brokertest.Name("e2e")
	topo := broker.NewTopology(queue)
	brokertest.DeleteQueues(t, amqpURL, []string{topo.TaskQueue, topo.DeadLetterQueue}, []string{topo.DeadLetterExchange})

	scripts := t.TempDir()
	copyTree(t, "../../scripts", scripts)
	copyTree(t, "../testdata/scripts", scripts)

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
	base = append(base, extraEnv...)
	out := &logBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, stack.Options{
		BinDir:                binDir,
		GatewayAddr:           freeAddr(t),
		Workers:               workers,
		WorkerMetricsBasePort: freePortRange(t, workers+1),
		Env:                   base,
		Output:                out,
		ReadyTimeout:          30 * time.Second,
	})
	if err != nil {
		t.Fatalf("start stack: %v\n%s", err, out.String())
	}
	t.Cleanup(func() {
		if err := s.Stop(40 * time.Second); err != nil {
			t.Errorf("stop stack: %v", err)
		}
		if t.Failed() {
			t.Logf("process output:\n%s", tail(out.String(), 30000))
		}
	})
	tok, err := auth.IssueHS256([]byte(secret), auth.Claims{Subject: "e2e"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &env{stack: s, url: s.GatewayURL(), token: tok, queue: queue, amqpURL: amqpURL, scripts: scripts, baseEnv: base, out: out}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// response is a decoded answer.
type response struct {
	Code int
	Body map[string]any
	Raw  string
}

func (e *env) do(t *testing.T, method, path, body, token string) response {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 60 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	checkAgainstSpec(t, method, e.url+path, []byte(body), resp.Header, resp.StatusCode, raw)
	r := response{Code: resp.StatusCode, Raw: string(raw)}
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

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			if d.Name() == "__pycache__" {
				return filepath.SkipDir
			}
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// freePortRange finds a base port such that base+1..base+n are free.
func freePortRange(t *testing.T, n int) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		base := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ok := true
		for i := 1; i <= n; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
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
