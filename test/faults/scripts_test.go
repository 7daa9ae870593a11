package faults

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/proctest"
)

// grace is the gateway's SCRAPE_REPLY_GRACE: a caller waits at most timeout + grace.
const grace = 1500 * time.Millisecond

// slowMachineGrace is the gateway setting of the suites that assert a script's own timeout reply (not the
// gateway's 504): on a loaded CI machine the kill, the sweep of escapees and the reply can take longer than
// the default 1.5 s after the script's timeout, and how long they take is a figure of these tests, not
// what they assert.
const slowMachineGrace = "SCRAPE_REPLY_GRACE=10s"

// TestHostileScripts runs scripts that misbehave through the whole stack: each must end with a clear reply
// within its caller's timeout, leave nothing running, and neither read the worker's secrets nor reach
// protected addresses.
// escapeeTimeout is the timeout of the setsid-escapee runs: long enough for the script to start its
// escapee and record its pid on a loaded machine (it sleeps 60 s, so the timeout still ends it).
const escapeeTimeout = 8.0

func TestHostileScripts(t *testing.T) {
	t.Parallel()
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if to := r.URL.Query().Get("to"); to != "" {
			http.Redirect(w, r, to, http.StatusFound)
			return
		}
		fmt.Fprint(w, "hello from an allowed site")
	}))
	t.Cleanup(site.Close)
	siteAddr := site.Listener.Addr().String()
	e := start(t, options{workers: 1, workerEnv: []string{"WORKER_CONCURRENCY=4", "EGRESS_ALLOW=" + siteAddr},
		gatewayEnv: []string{slowMachineGrace}})
	worker := e.workers[0]

	t.Run("runaway", func(t *testing.T) {
		for _, script := range []string{"busy_loop", "ignores_signals"} {
			t.Run(script, func(t *testing.T) {
				t.Parallel()
				const timeout = 2.0
				r := e.scrape(script, nil, timeout)
				// The worker's timeout reply (not the gateway's 504) proves the script was stopped at its
				// timeout; how long the answer took is a figure.
				if r.err != nil || r.code != 200 || r.status() != "timeout" || r.errorCode() != "script_timeout" {
					t.Fatalf("got %d %s %v", r.code, r.raw, r.err)
				}
				report(t, "script: "+map[string]string{"busy_loop": "infinite loop", "ignores_signals": "sleeper ignoring signals"}[script],
					"timeout reply at the 2 s timeout", "200 status=timeout script_timeout", "answered in "+ms(r.latency))
			})
		}
		t.Run("setsid escapee", func(t *testing.T) {
			t.Parallel()
			pidFile := filepath.Join(e.pidDir, "escapee")
			r := e.scrape("escapes_and_sleeps", map[string]any{"pid_file": pidFile}, escapeeTimeout)
			if r.err != nil || r.code != 200 || r.status() != "timeout" {
				t.Fatalf("got %d %s %v", r.code, r.raw, r.err)
			}
			b, err := os.ReadFile(pidFile)
			if err != nil {
				t.Fatalf("the script did not record its escapee: %v", err)
			}
			var group, escapee int
			fmt.Sscanf(string(b), "%d %d", &group, &escapee)
			if live := waitDead([]int{escapee}, 15*time.Second); len(live) > 0 {
				t.Fatalf("the setsid escapee %d survived the timeout", escapee)
			}
			report(t, "script: grandchild escaping with setsid (ignores SIGTERM)", "killed at the timeout",
				"timeout reply; escapee gone", "answered in "+ms(r.latency))
		})
	})

	t.Run("limits", func(t *testing.T) {
		t.Run("memory bomb", func(t *testing.T) {
			t.Parallel()
			r := e.scrape("memory_bomb", nil, 20)
			msg, _ := r.body["error"].(string)
			if r.code != 200 || r.status() != "failed" || r.errorCode() != "script_error" || !strings.Contains(msg, "at most 256 MiB") {
				t.Fatalf("got %d %s %v", r.code, r.raw, r.err)
			}
			report(t, "script: memory bomb", "failed with a clear message (memory limit)", "failed script_error: "+msg, "answered in "+ms(r.latency))
		})
		t.Run("fork bomb", func(t *testing.T) {
			t.Parallel()
			pidFile := filepath.Join(e.pidDir, "forkbomb")
			r := e.scrape("fork_bomb", map[string]any{"pid_file": pidFile}, 20)
			msg, _ := r.body["error"].(string)
			if r.code != 200 || r.status() != "failed" || r.body["error_type"] != "BlockingIOError" || !strings.Contains(msg, "limit of") {
				t.Fatalf("got %d %s %v", r.code, r.raw, r.err)
			}
			b, _ := os.ReadFile(pidFile)
			group, _ := strconv.Atoi(strings.Fields(string(b) + " 0")[0])
			if live := groupMembers(group); len(live) > 0 {
				if live = waitDead(live, 15*time.Second); len(live) > 0 {
					t.Fatalf("fork bomb processes survive: %v", live)
				}
			}
			report(t, "script: fork bomb", "stopped by a process limit, nothing left", "failed BlockingIOError: "+msg, "answered in "+ms(r.latency))
		})
		t.Run("1 GiB on stdout and stderr", func(t *testing.T) {
			t.Parallel()
			before := metric(t, worker.metricsURL, "process_resident_memory_bytes")
			const mib = 512 // per stream
			r := e.scrape("floods_output", map[string]any{"mib": mib}, 25)
			after := metric(t, worker.metricsURL, "process_resident_memory_bytes")
			if r.code != 200 || r.status() != "completed" {
				t.Fatalf("got %d %s %v", r.code, r.raw, r.err)
			}
			grew := (after - before) / (1 << 20)
			if grew > 256 {
				t.Errorf("the worker's resident memory grew by %.0f MiB while draining %d MiB of output", grew, 2*mib)
			}
			report(t, "script: 1 GiB on stdout+stderr", "drained and capped; completed", "completed; output tail capped at 8 KiB, log budget 256 KiB",
				fmt.Sprintf("%d MiB in %s (%.0f MiB/s); worker RSS %+.0f MiB", 2*mib, ms(r.latency), float64(2*mib)/r.latency.Seconds(), grew))
		})
	})

	t.Run("results", func(t *testing.T) {
		for _, tc := range []struct {
			name, script string
			params       map[string]any
			code         string
		}{
			{"non-JSON-serialisable result", "returns_set", nil, "invalid_output"},
			{"1 MiB result", "huge_result", map[string]any{"bytes": 1 << 20}, "output_too_large"},
			{"450 KiB result (over the 400 KiB result limit, near the 500 KiB message limit)", "huge_result", map[string]any{"bytes": 450 << 10}, "output_too_large"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				r := e.scrape(tc.script, tc.params, 20)
				if r.code != 200 || r.status() != "failed" || r.errorCode() != tc.code {
					t.Fatalf("got %d %.500s %v", r.code, r.raw, r.err)
				}
				report(t, "script: "+tc.name, "failed with "+tc.code, fmt.Sprintf("failed %s: %v", tc.code, r.body["error"]), "answered in "+ms(r.latency))
			})
		}
	})

	t.Run("secrets", func(t *testing.T) {
		t.Parallel()
		paths := []string{
			fmt.Sprintf("/proc/%d/environ", worker.proc.Pid()),
			fmt.Sprintf("/proc/%d/environ", e.gateway.Pid()),
			filepath.Join(e.home, ".aws", "credentials"),
		}
		r := e.scrape("reads_files", map[string]any{"paths": paths}, 20)
		if r.code != 200 || r.status() != "completed" {
			t.Fatalf("got %d %s %v", r.code, r.raw, r.err)
		}
		for _, s := range []string{secret, awsSecretKey, awsRelativeURI, fileSecret, "RABBITMQ_URL", "JWT_SECRET", "AWS_"} {
			if strings.Contains(r.raw, s) {
				t.Errorf("the script found %q: %s", s, r.raw)
			}
		}
		// Whoever may read the worker's /proc/<pid>/environ (root, here) finds it zeroed.
		b, err := os.ReadFile(paths[0])
		if err == nil && (strings.Contains(string(b), awsSecretKey) || strings.Contains(string(b), "RABBITMQ_URL")) {
			t.Errorf("the worker's environment block still holds its secrets: %q", proctest.Tail(string(b), 300))
		}
		files, _ := r.body["data"].(map[string]any)["files"].(map[string]any)
		var outcomes []string
		for _, p := range paths {
			f, _ := files[p].(map[string]any)
			outcome := "read, no secret in it"
			if msg, ok := f["error"].(string); ok {
				outcome = msg
			}
			outcomes = append(outcomes, filepath.Base(filepath.Dir(p))+"/"+filepath.Base(p)+": "+outcome)
		}
		nonZero := 0
		for _, c := range b {
			if c != 0 {
				nonZero++
			}
		}
		report(t, "script: reads env, /proc/<worker>/environ, /proc/<gateway>/environ, worker's credentials file",
			"no broker URL, JWT secret or cloud credentials", "env: minimal, no secrets; "+strings.Join(outcomes, "; "),
			fmt.Sprintf("script uid %v; the worker's environ as root sees it: %d bytes, %d non-zero", r.body["data"].(map[string]any)["uid"], len(b), nonZero))
	})

	t.Run("ssrf", func(t *testing.T) {
		metricsPort := strings.TrimSuffix(strings.TrimPrefix(worker.metricsURL, "http://127.0.0.1:"), "/metrics")
		gatewayPort := strings.TrimPrefix(e.gatewayURL, "http://127.0.0.1:")
		refused := []struct{ name, url string }{
			{"EC2 metadata", "http://169.254.169.254/latest/meta-data/iam/security-credentials/"},
			{"ECS task credentials", "http://169.254.170.2" + awsRelativeURI},
			{"EC2 metadata over IPv6", "http://[fd00:ec2::254]/latest/meta-data/"},
			{"metadata, decimal", "http://2852039166/latest/meta-data/"},
			{"metadata, octal", "http://0251.0376.0251.0376/latest/meta-data/"},
			{"metadata, hex", "http://0xa9fea9fe/latest/meta-data/"},
			{"metadata, IPv4-mapped IPv6", "http://[::ffff:169.254.169.254]/latest/meta-data/"},
			{"metadata over TLS (CONNECT)", "https://169.254.169.254/latest/meta-data/"},
			{"worker admin port on loopback", "http://127.0.0.1:" + metricsPort + "/metrics"},
			{"gateway by a name that resolves to loopback", "http://localhost:" + gatewayPort + "/health"},
			{"RabbitMQ management on loopback", "http://127.0.0.1:15672/api/overview"},
			{"private network 10/8", "http://10.0.0.1/"},
			{"private network 192.168/16", "http://192.168.1.1/"},
			{"redirect from an allowed site to metadata", site.URL + "/?to=" + url.QueryEscape("http://169.254.169.254/latest/meta-data/")},
		}
		for _, tc := range refused {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				r := e.scrape("fetch", map[string]any{"url": tc.url}, 15)
				if r.code != 200 || r.status() != "completed" {
					t.Fatalf("got %d %s %v", r.code, r.raw, r.err)
				}
				data, _ := r.body["data"].(map[string]any)
				body, _ := data["body"].(string)
				errText, _ := data["error"].(string)
				ok := (data["status"] == float64(403) && strings.Contains(body, "egress proxy refused")) ||
					strings.Contains(errText, "403 Forbidden")
				if !ok {
					t.Fatalf("%s was not refused: %s", tc.url, r.raw)
				}
				what := body
				if what == "" {
					what = errText
				}
				report(t, "SSRF: "+tc.name, "refused by the egress proxy", "refused: "+firstLine(what, 140), "answered in "+ms(r.latency))
			})
		}
		t.Run("allowed site", func(t *testing.T) {
			t.Parallel()
			r := e.scrape("fetch", map[string]any{"url": site.URL + "/hello"}, 15)
			data, _ := r.body["data"].(map[string]any)
			if r.code != 200 || data["status"] != float64(200) || data["body"] != "hello from an allowed site" {
				t.Fatalf("got %d %s %v", r.code, r.raw, r.err)
			}
			report(t, "SSRF: private target on the allow list (EGRESS_ALLOW="+siteAddr+")", "reachable", "200 from the site", "answered in "+ms(r.latency))
		})
	})
}

// groupMembers lists live processes in process group pgid.
func groupMembers(pgid int) []int {
	if pgid <= 1 {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var live []int
	for _, en := range entries {
		pid, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + en.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			live = append(live, pid)
		}
	}
	return live
}

func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
