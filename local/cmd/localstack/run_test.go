package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/local/stack"
	"github.com/scrapeplatform/platform/local/stack/stacktest"
	"github.com/scrapeplatform/platform/shared/brokertest"
	"github.com/scrapeplatform/platform/shared/proctest"
)

// fakeBinDir holds stand-ins for gateway-local and worker, built from the
// stack package's test program.
var fakeBinDir string

func TestMain(m *testing.M) {
	os.Exit(stacktest.RunWithFakes(m, &fakeBinDir, func(dir string) error {
		// go test puts its own GOROOT/bin first on the test's PATH.
		goBin, err := exec.LookPath("go")
		if err != nil {
			return err
		}
		// The real scrapectl publishes scripts to the local S3 server.
		build := exec.Command(goBin, "build", "-o", filepath.Join(dir, "scrapectl"), "./cmd/scrapectl")
		build.Dir = "../../../worker"
		if out, err := build.CombinedOutput(); err != nil {
			return fmt.Errorf("build scrapectl: %w: %s", err, out)
		}
		return nil
	}))
}

// fakeBroker answers the AMQP liveness probe only (connection.start); the
// fake gateway and workers never connect. The real-broker paths are tested
// in the stack package.
func fakeBroker(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go fakeHandshake(c)
		}
	}()
	return "amqp://guest:guest@" + ln.Addr().String() + "/"
}

// fakeHandshake plays a broker's side of the AMQP connection handshake on c, as far as the stack's checks
// go: connection.start for the protocol header (stack's probe), then tune for start-ok, open-ok for open
// and close-ok for close (broker.CheckLogin's login).
func fakeHandshake(c net.Conn) {
	defer c.Close()
	method := func(id byte, args ...byte) []byte {
		f := []byte{1, 0, 0, 0, 0, 0, byte(4 + len(args)), 0, 10, 0, id}
		return append(append(f, args...), 0xCE)
	}
	head := make([]byte, 8)
	if _, err := io.ReadFull(c, head); err != nil {
		return
	}
	_, _ = c.Write(method(10)) // connection.start (no arguments: the probe reads only the method)
	for {
		var h [7]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return
		}
		payload := make([]byte, int(h[3])<<24|int(h[4])<<16|int(h[5])<<8|int(h[6])+1)
		if _, err := io.ReadFull(c, payload); err != nil || len(payload) < 5 {
			return
		}
		switch payload[3] {
		case 11: // start-ok: tune with channel-max 0, frame-max 131072, heartbeat 0
			_, _ = c.Write(method(30, 0, 0, 0, 2, 0, 0, 0, 0))
		case 40: // open: open-ok
			_, _ = c.Write(method(41, 0))
		case 50: // close: close-ok
			_, _ = c.Write(method(51))
			return
		}
	}
}

// freeBase returns base such that base+1..base+n are free ports. They lie in
// 24000-32767: below the kernel's ephemeral ports (Linux default 32768-60999),
// which outgoing connections and ":0" listeners take theirs from, so nothing
// running alongside grabs one between this check and the child's bind; and
// above the ports the stack package's tests, which run in parallel with these,
// hand out (10001-23999).
func freeBase(t *testing.T, n int) int {
	t.Helper()
	return proctest.PortBlock(t, n, 24000, 32767)
}

type runResult struct {
	stdout, stderr *proctest.Output
	done           chan error
	cancel         context.CancelFunc
}

// startRun runs run in the background in a fresh working folder.
func startRun(t *testing.T, env map[string]string, args ...string) *runResult {
	t.Helper()
	t.Chdir(t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	r := &runResult{stdout: &proctest.Output{}, stderr: &proctest.Output{}, done: make(chan error, 1), cancel: cancel}
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		switch k {
		case "PROMETHEUS_ADDR":
			return "off" // Prometheus only where a test asks for it
		case "VERSITYGW":
			return "/nonexistent/versitygw" // a local S3 server only where a test asks for it
		}
		return ""
	}
	go func() { r.done <- run(ctx, args, getenv, r.stdout, r.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("run did not return")
		}
	})
	return r
}

func (r *runResult) waitFor(t *testing.T, want string) {
	t.Helper()
	// A bound against hangs, not a speed check: a start that asks the machine's rabbitmqctl (an Erlang
	// CLI) about a found broker takes seconds, and more on a loaded machine.
	deadline := time.After(2 * time.Minute)
	for !strings.Contains(r.stdout.String(), want) {
		select {
		case err := <-r.done:
			t.Fatalf("run returned %v before printing %q\nstdout:\n%s\nstderr:\n%s", err, want, r.stdout, r.stderr)
		case <-deadline:
			t.Fatalf("no %q in stdout:\n%s\nstderr:\n%s", want, r.stdout, r.stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (r *runResult) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("run did not return\nstderr:\n%s", r.stderr)
		return nil
	}
}

func pidsIn(s string) []int {
	var pids []int
	for _, m := range regexp.MustCompile(`starting pid (\d+)`).FindAllStringSubmatch(s, -1) {
		n, _ := strconv.Atoi(m[1])
		pids = append(pids, n)
	}
	return pids
}

func childEnvOf(t *testing.T, url string) []string {
	t.Helper()
	resp, err := http.Get(url + "/env")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env []string
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatal(err)
	}
	return env
}

// The normal session: start, print how to call it, pass the settings on,
// stop on a signal with exit 0 and nothing left running.
func TestRunStartsTheStackAndStopsOnSignal(t *testing.T) {
	t.Setenv("LOCALSTACK_TEST_MARKER", "from-the-user")
	broker := fakeBroker(t)
	base := freeBase(t, 3)
	gateway := "127.0.0.1:" + strconv.Itoa(base+1)
	r := startRun(t, map[string]string{"RABBITMQ_URL": broker},
		"-bin", fakeBinDir, "-gateway-addr", gateway, "-workers", "2", "-worker-metrics-base-port", strconv.Itoa(base+1))
	r.waitFor(t, "Ctrl-C stops everything")

	// The children's lines are copied from their pipes by goroutines and may
	// come after the banner: wait for each.
	for _, want := range []string{
		"TOKEN=$(make -s token)",
		`curl -s -H "Authorization: Bearer $TOKEN" -d '{"script_name":"example_scraper","parameters":{"url":"https://example.com"}}' http://` + gateway + "/scrape",
		"[gateway] gateway listening on",
		"[worker-2] worker-2 listening on 127.0.0.1:" + strconv.Itoa(base+3),
	} {
		r.waitFor(t, want)
	}

	wd, _ := os.Getwd()
	secret, err := os.ReadFile(filepath.Join(wd, ".local", "jwt-secret"))
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(wd, ".local", "jwt-secret")); fi.Mode().Perm() != 0o600 {
		t.Errorf("jwt-secret mode %v, want 0600", fi.Mode().Perm())
	}
	if !regexp.MustCompile(`^[0-9a-f]{64}\n$`).Match(secret) {
		t.Errorf("jwt-secret = %q, want 64 hex digits", secret)
	}
	for _, url := range []string{"http://" + gateway, "http://127.0.0.1:" + strconv.Itoa(base+2)} {
		env := childEnvOf(t, url)
		for _, want := range []string{
			"RABBITMQ_URL=" + broker,
			"JWT_SECRET=" + strings.TrimSpace(string(secret)),
			"SCRIPT_REPOSITORY_TYPE=local",
			"SCRIPT_REPOSITORY_URL=" + filepath.Join(wd, "scripts"),
			"LOCALSTACK_TEST_MARKER=from-the-user",
		} {
			if !slices.Contains(env, want) {
				t.Errorf("%s environment lacks %s", url, want)
			}
		}
	}

	r.cancel() // what main does on SIGINT/SIGTERM
	if err := r.wait(t); err != nil {
		t.Fatalf("run = %v, want nil after a signal", err)
	}
	pids := pidsIn(r.stdout.String())
	if len(pids) != 3 {
		t.Errorf("saw %d processes start, want 3", len(pids))
	}
	proctest.WaitGone(t, 20*time.Second, pids...)
	if !strings.Contains(r.stdout.String(), "[worker-1] worker-1 got terminated, draining") {
		t.Errorf("worker-1 was not asked to drain:\n%s", r.stdout)
	}
}

func TestRunHonoursJWTSecretAndRepositorySettings(t *testing.T) {
	base := freeBase(t, 2)
	r := startRun(t, map[string]string{
		"RABBITMQ_URL":           fakeBroker(t),
		"JWT_SECRET":             "from-env",
		"SCRIPT_REPOSITORY_TYPE": "s3",
		"S3_BUCKET_NAME":         "the-users-bucket", // the user's S3: no local server
		"GATEWAY_ADDR":           "127.0.0.1:" + strconv.Itoa(base+1),
	}, "-bin", fakeBinDir, "-workers", "1", "-worker-metrics-base-port", strconv.Itoa(base+1))
	r.waitFor(t, "Ctrl-C stops everything")
	env := childEnvOf(t, "http://127.0.0.1:"+strconv.Itoa(base+1))
	for _, want := range []string{"JWT_SECRET=from-env", "SCRIPT_REPOSITORY_TYPE=s3"} {
		if !slices.Contains(env, want) {
			t.Errorf("gateway environment lacks %s", want)
		}
	}
	if _, err := os.Stat(".local/jwt-secret"); err == nil {
		t.Error("a secret file was written although JWT_SECRET is set")
	}
	r.cancel()
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
}

// With prometheus installed, run starts it on the processes' real addresses
// with the alert rules, prints its URL, and stops it at the end.
func TestRunStartsPrometheus(t *testing.T) {
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Fatalf("this test needs Prometheus (Debian: apt-get install prometheus; .ci/run installs it): %v", err)
	}
	rules, err := filepath.Abs("../../prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	base := freeBase(t, 3)
	gateway := "127.0.0.1:" + strconv.Itoa(base+1)
	promAddr := "127.0.0.1:" + strconv.Itoa(base+3)
	r := startRun(t, map[string]string{"RABBITMQ_URL": fakeBroker(t), "PROMETHEUS_ADDR": promAddr, "RABBITMQ_PROMETHEUS_ADDR": "127.0.0.1:1"},
		"-bin", fakeBinDir, "-gateway-addr", gateway, "-workers", "1", "-worker-metrics-base-port", strconv.Itoa(base+1),
		"-prometheus-rules", rules, "-prometheus-interval", "1s")
	r.waitFor(t, "Ctrl-C stops everything")
	if want := "prometheus  http://" + promAddr; !strings.Contains(r.stdout.String(), want) {
		t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
	}

	var targets struct {
		Data struct {
			ActiveTargets []struct {
				ScrapeURL string `json:"scrapeUrl"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	var urls []string
	// Targets appear once service discovery has run, a moment after start.
	for end := time.Now().Add(15 * time.Second); len(urls) < 4 && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		getJSON(t, "http://"+promAddr+"/api/v1/targets", &targets)
		urls = urls[:0]
		for _, tg := range targets.Data.ActiveTargets {
			urls = append(urls, tg.ScrapeURL)
		}
	}
	slices.Sort(urls)
	want := []string{
		"http://127.0.0.1:1/metrics",
		"http://127.0.0.1:1/metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count",
		"http://" + gateway + "/metrics",
		"http://127.0.0.1:" + strconv.Itoa(base+2) + "/metrics",
	}
	slices.Sort(want)
	if !slices.Equal(urls, want) {
		t.Errorf("scrape URLs %q, want %q", urls, want)
	}
	var rulesResp struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name string `json:"name"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	getJSON(t, "http://"+promAddr+"/api/v1/rules", &rulesResp)
	if len(rulesResp.Data.Groups) != 1 || len(rulesResp.Data.Groups[0].Rules) < 5 {
		t.Errorf("rules loaded: %+v", rulesResp.Data.Groups)
	}

	r.cancel()
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", promAddr, time.Second); err == nil {
		c.Close()
		t.Error("prometheus still listens after the stack stopped")
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// With versitygw installed, the workers read scripts from a local S3 server
// to which run has published the script folders with scrapectl.
func TestRunPublishesScriptsToALocalS3Server(t *testing.T) {
	versitygw, err := filepath.Abs("../../../.tools/bin/versitygw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(versitygw); err != nil {
		t.Fatalf("this test needs versitygw: run `make versitygw` (make test does): %v", err)
	}
	scripts := t.TempDir()
	for _, name := range []string{"hello", "other"} {
		if err := os.MkdirAll(filepath.Join(scripts, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(scripts, name, "scraper.py"), []byte("def scrape(params):\n    return {}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(scripts, "not_a_script"), 0o755); err != nil {
		t.Fatal(err)
	}
	base := freeBase(t, 3)
	gateway := "127.0.0.1:" + strconv.Itoa(base+1)
	s3Addr := "127.0.0.1:" + strconv.Itoa(base+3)
	r := startRun(t, map[string]string{"RABBITMQ_URL": fakeBroker(t), "VERSITYGW": versitygw, "SCRIPT_REPOSITORY_URL": scripts},
		"-bin", fakeBinDir, "-gateway-addr", gateway, "-workers", "1", "-worker-metrics-base-port", strconv.Itoa(base+1), "-s3-addr", s3Addr)
	r.waitFor(t, "Ctrl-C stops everything")
	if want := "scripts     s3://scraping-scripts/scripts/ on http://" + s3Addr; !strings.Contains(r.stdout.String(), want) {
		t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
	}
	env := childEnvOf(t, "http://127.0.0.1:"+strconv.Itoa(base+2))
	for _, want := range []string{"SCRIPT_REPOSITORY_TYPE=s3", "S3_BUCKET_NAME=scraping-scripts", "S3_ENDPOINT_URL=http://" + s3Addr,
		"S3_ACCESS_KEY=" + localS3AccessKey, "S3_SECRET_KEY=" + localS3SecretKey, "S3_PREFIX=scripts/"} {
		if i := slices.Index(env, want); i < 0 || slices.ContainsFunc(env[i+1:], func(kv string) bool {
			return strings.HasPrefix(kv, strings.SplitN(want, "=", 2)[0]+"=")
		}) {
			t.Errorf("worker environment lacks %s (as its last word)", want)
		}
	}
	// The job store lives on the same server.
	for _, want := range []string{"JOB_STORE_BUCKET=scraping-jobs"} {
		if !slices.Contains(env, want) {
			t.Errorf("worker environment lacks %s", want)
		}
	}
	if want := "jobs        s3://scraping-jobs on http://" + s3Addr; !strings.Contains(r.stdout.String(), want) {
		t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
	}
	wd, _ := os.Getwd()
	if fi, err := os.Stat(filepath.Join(wd, ".local", "s3", "scraping-jobs")); err != nil || !fi.IsDir() {
		t.Errorf("the jobs bucket was not created: %v", err)
	}
	for name, want := range map[string]bool{"hello": true, "other": true, "not_a_script": false} {
		_, err := os.Stat(filepath.Join(wd, ".local", "s3", "scraping-scripts", "scripts", name+".tar.gz"))
		if (err == nil) != want {
			t.Errorf("bundle of %s published: %v, want %v", name, err == nil, want)
		}
	}
	r.cancel()
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
	if c, err := net.DialTimeout("tcp", s3Addr, time.Second); err == nil {
		c.Close()
		t.Error("the S3 server still listens after the stack stopped")
	}
}

// SCRIPT_REPOSITORY_TYPE=local runs get jobs too: the local S3 server runs for the job store only, and the
// workers still read the folder.
func TestRunKeepsJobsOnTheLocalS3ServerWithALocalRepository(t *testing.T) {
	versitygw, err := filepath.Abs("../../../.tools/bin/versitygw")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(versitygw); err != nil {
		t.Fatalf("this test needs versitygw: run `make versitygw` (make test does): %v", err)
	}
	scripts := t.TempDir()
	base := freeBase(t, 3)
	s3Addr := "127.0.0.1:" + strconv.Itoa(base+3)
	r := startRun(t, map[string]string{"RABBITMQ_URL": fakeBroker(t), "VERSITYGW": versitygw, "SCRIPT_REPOSITORY_TYPE": "local", "SCRIPT_REPOSITORY_URL": scripts},
		"-bin", fakeBinDir, "-gateway-addr", "127.0.0.1:"+strconv.Itoa(base+1), "-workers", "1", "-worker-metrics-base-port", strconv.Itoa(base+1), "-s3-addr", s3Addr)
	r.waitFor(t, "Ctrl-C stops everything")
	env := childEnvOf(t, "http://127.0.0.1:"+strconv.Itoa(base+2))
	for _, want := range []string{"SCRIPT_REPOSITORY_TYPE=local", "SCRIPT_REPOSITORY_URL=" + scripts, "JOB_STORE_BUCKET=scraping-jobs",
		"S3_ENDPOINT_URL=http://" + s3Addr, "S3_ACCESS_KEY=" + localS3AccessKey} {
		if !slices.Contains(env, want) {
			t.Errorf("worker environment lacks %s", want)
		}
	}
	if slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "S3_BUCKET_NAME=") }) {
		t.Error("a local repository got the script bucket's S3_BUCKET_NAME")
	}
	if c, err := net.DialTimeout("tcp", s3Addr, 5*time.Second); err != nil {
		t.Errorf("the S3 server for jobs does not listen: %v", err)
	} else {
		c.Close()
	}
	r.cancel()
	if err := r.wait(t); err != nil {
		t.Fatal(err)
	}
}

// A child that dies takes the stack down with an error that says which and
// why.
func TestRunFailsWhenAProcessDies(t *testing.T) {
	base := freeBase(t, 3)
	r := startRun(t, map[string]string{"RABBITMQ_URL": fakeBroker(t)},
		"-bin", fakeBinDir, "-gateway-addr", "127.0.0.1:"+strconv.Itoa(base+1), "-worker-metrics-base-port", strconv.Itoa(base+1))
	// Crash worker-2 (metrics on base+3) once the stack is up; a crash timer
	// started with the process could fire before the others are ready.
	r.waitFor(t, "Ctrl-C stops everything")
	stacktest.Crash(t, "http://127.0.0.1:"+strconv.Itoa(base+3))
	err := r.wait(t)
	if err == nil || !strings.Contains(err.Error(), "worker-2 died unexpectedly") {
		t.Fatalf("run = %v", err)
	}
	logs := r.stderr.String()
	for _, want := range []string{"worker-2 DIED UNEXPECTEDLY", "exit status 3", "panic: something went badly wrong"} {
		if !strings.Contains(logs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, logs)
		}
	}
	proctest.WaitGone(t, 20*time.Second, pidsIn(r.stdout.String())...)
}

func TestRunReportsAFailedStart(t *testing.T) {
	// A free gateway address: the default one may be in use on this machine.
	r := startRun(t, map[string]string{"RABBITMQ_URL": fakeBroker(t)}, "-bin", "no-such-bin", "-gateway-addr", freeAddrOutside(t))
	err := r.wait(t)
	if err == nil || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("run = %v", err)
	}
}

// TestRunStopsAtOnceOnAWrongBrokerPassword runs against the real broker with a wrong password: the start
// stops before any process starts, with the broker's reason.
func TestRunStopsAtOnceOnAWrongBrokerPassword(t *testing.T) {
	u, err := url.Parse(brokertest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "not-the-password")
	r := startRun(t, map[string]string{"RABBITMQ_URL": u.String()}, "-bin", fakeBinDir, "-gateway-addr", freeAddrOutside(t))
	err = r.wait(t)
	if err == nil {
		t.Fatal("run succeeded")
	}
	for _, want := range []string{"AMQP login", "refused the user name or password", "403 ACCESS_REFUSED", "RABBITMQ_URL"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("run = %v; lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "not-the-password") {
		t.Errorf("the error shows the password: %v", err)
	}
	if strings.Contains(r.stdout.String(), "Local stack ready") {
		t.Error("the stack reported ready")
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-workers", "0"}, {"-nope"}, {"extra"}} {
		err := run(t.Context(), args, func(string) string { return "" }, &proctest.Output{}, &proctest.Output{})
		if err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "jwt-secret")
	s1, created, err := loadOrCreateSecret(path)
	if err != nil || !created || len(s1) != 64 {
		t.Fatalf("first call: %q, %v, %v", s1, created, err)
	}
	s2, created, err := loadOrCreateSecret(path)
	if err != nil || created || s2 != s1 {
		t.Fatalf("second call: %q, %v, %v; want the same secret", s2, created, err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, created, err := loadOrCreateSecret(empty); err != nil || !created || len(s) != 64 {
		t.Errorf("empty file: %q, %v, %v", s, created, err)
	}
	kept := filepath.Join(dir, "kept")
	if err := os.WriteFile(kept, []byte("  mine \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, _, err := loadOrCreateSecret(kept); err != nil || s != "mine" {
		t.Errorf("existing file: %q, %v", s, err)
	}
}

func TestRunRejectsABadQueueBound(t *testing.T) {
	for _, v := range []string{"-1", "many", "1e3"} {
		env := func(k string) string {
			if k == "TASK_QUEUE_MAX_LENGTH" {
				return v
			}
			return ""
		}
		err := run(t.Context(), nil, env, &proctest.Output{}, &proctest.Output{})
		if err == nil || !strings.Contains(err.Error(), "TASK_QUEUE_MAX_LENGTH") {
			t.Errorf("TASK_QUEUE_MAX_LENGTH=%q: run = %v", v, err)
		}
	}
}

// listenOn holds addr until the test ends; false when something else
// already holds it (taken either way).
func listenOn(t *testing.T, addr string) bool {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	t.Cleanup(func() { ln.Close() })
	return true
}

// A second stack on this machine: its taken default ports move to free ones;
// the ones the user chose, and the gateway's, are reported all at once.
func TestSettlePorts(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	base := freeBase(t, 5)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(base+i) }
	for i := 1; i <= 5; i++ {
		listenOn(t, addr(i))
	}
	cfg := config{gatewayAddr: freeAddrOutside(t), s3Addr: addr(1), prometheusAddr: addr(2), metricsBasePort: base + 2, workers: 2}
	if err := settlePorts(&cfg, log); err != nil {
		t.Fatalf("default ports taken: %v, want them moved", err)
	}
	if cfg.s3Addr == addr(1) || cfg.prometheusAddr == addr(2) || cfg.metricsBasePort == base+2 {
		t.Errorf("taken defaults not moved: s3 %s, prometheus %s, worker metrics base %d", cfg.s3Addr, cfg.prometheusAddr, cfg.metricsBasePort)
	}
	for _, a := range []string{cfg.s3Addr, cfg.prometheusAddr, "127.0.0.1:" + strconv.Itoa(cfg.metricsBasePort+1), "127.0.0.1:" + strconv.Itoa(cfg.metricsBasePort+2)} {
		if err := stack.AddrFree(a); err != nil {
			t.Errorf("moved to a taken address: %v", err)
		}
	}

	cfg = config{gatewayAddr: addr(5), s3Addr: addr(1), prometheusAddr: addr(2), metricsBasePort: base + 2, workers: 2,
		s3AddrChosen: true, prometheusAddrChosen: true, metricsBaseChosen: true}
	err := settlePorts(&cfg, log)
	if err == nil {
		t.Fatal("chosen ports taken: no error")
	}
	for _, want := range []string{
		"is another stack running?",
		"gateway: " + addr(5) + " is taken", "set GATEWAY_ADDR (or -gateway-addr) to a free address such as GATEWAY_ADDR=127.0.0.1:",
		"S3 server: " + addr(1) + " is taken", "set -s3-addr",
		"Prometheus: " + addr(2) + " is taken", "set PROMETHEUS_ADDR",
		"worker metrics (ports " + strconv.Itoa(base+3) + ".." + strconv.Itoa(base+4) + "): " + addr(3) + " is taken",
		"set -worker-metrics-base-port",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}

	// Prometheus off and scripts from the user's S3: their ports do not matter.
	cfg = config{gatewayAddr: freeAddrOutside(t), s3Addr: addr(1), repositoryType: "s3", metricsBasePort: base + 5, workers: 1,
		s3AddrChosen: true, metricsBaseChosen: true}
	if err := settlePorts(&cfg, log); err != nil {
		t.Errorf("unused ports checked: %v", err)
	}
}

// freeAddrOutside returns a free loopback address that freeBase does not hand
// out (the system picks it).
func freeAddrOutside(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Two stacks on one machine: the second, with its own GATEWAY_ADDR, runs
// beside the first, its workers on free metrics ports when the defaults are
// taken and with a scratch folder of their own; with the first's gateway
// address it stops at once, before starting anything, and says why.
func TestRunSecondStackOnOneMachine(t *testing.T) {
	broker := fakeBroker(t)
	base := freeBase(t, 3)
	first := "127.0.0.1:" + strconv.Itoa(base+1)
	r1 := startRun(t, map[string]string{"RABBITMQ_URL": broker, "GATEWAY_ADDR": first},
		"-bin", fakeBinDir, "-workers", "1", "-worker-metrics-base-port", strconv.Itoa(base+1))
	r1.waitFor(t, "Ctrl-C stops everything")

	// The default worker metrics port (9101) is taken: by this test, or by
	// whatever already holds it.
	listenOn(t, "127.0.0.1:"+strconv.Itoa(stack.DefaultWorkerMetricsBasePort+1))
	second := freeAddrOutside(t)
	r2 := startRun(t, map[string]string{"RABBITMQ_URL": broker, "GATEWAY_ADDR": second}, "-bin", fakeBinDir, "-workers", "1")
	r2.waitFor(t, "Ctrl-C stops everything")
	if strings.Contains(r2.stdout.String(), "127.0.0.1:"+strconv.Itoa(stack.DefaultWorkerMetricsBasePort+1)+"/metrics") {
		t.Errorf("the second stack's worker uses the taken default port:\n%s", r2.stdout)
	}
	if !strings.Contains(r2.stderr.String(), "worker metrics: the default ports are taken") {
		t.Errorf("the move is not logged:\n%s", r2.stderr)
	}
	workDir := func(addr string) string {
		_, port, _ := net.SplitHostPort(addr)
		return "WORKER_WORK_DIR=" + filepath.Join(os.TempDir(), "scrape-local-"+port)
	}
	if env := childEnvOf(t, "http://"+first); !slices.Contains(env, workDir(first)) {
		t.Errorf("the first stack's environment lacks %s", workDir(first))
	}
	if env := childEnvOf(t, "http://"+second); !slices.Contains(env, workDir(second)) {
		t.Errorf("the second stack's environment lacks %s", workDir(second))
	}

	r3 := startRun(t, map[string]string{"RABBITMQ_URL": broker, "GATEWAY_ADDR": first}, "-bin", fakeBinDir, "-workers", "1")
	err := r3.wait(t)
	if err == nil || !strings.Contains(err.Error(), "gateway: "+first+" is taken") || !strings.Contains(err.Error(), "GATEWAY_ADDR=") {
		t.Fatalf("run with a taken gateway address = %v, want the address named and a free one suggested", err)
	}
	if strings.Contains(r3.stderr.String(), "broker") {
		t.Errorf("the broker was looked at before the ports were checked:\n%s", r3.stderr)
	}
}
