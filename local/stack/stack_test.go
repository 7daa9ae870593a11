package stack

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/local/stack/stacktest"
	"github.com/scrapeplatform/platform/shared/proctest"
)

// stackOptions returns Options for the stand-in binaries on free ports.
func stackOptions(t *testing.T, out *proctest.Output, env ...string) Options {
	return Options{
		BinDir:                fakeBinDir,
		GatewayAddr:           freeAddr(t),
		Workers:               2,
		WorkerMetricsBasePort: freePortRange(t, 2),
		Env:                   append([]string{"PATH=/usr/bin:/bin"}, env...),
		Output:                out,
		ReadyTimeout:          10 * time.Second,
		Logger:                testLogger(t),
	}
}

// startStack starts the stack of *o, on other free ports (written back to *o) when one of its ports is
// busy at Start's check. A port proctest.PortBlock has just found free can be, rarely: a process forked
// by a test running alongside can hold a copy of a probe's listener (shared/portprobe). Start refuses a
// busy port before it starts anything (wrapping EADDRINUSE), so trying again is safe.
func startStack(t *testing.T, o *Options) *Stack {
	t.Helper()
	var s *Stack
	first := true
	err := proctest.RetryOnBusyPort(t, func() (err error) {
		if !first {
			o.GatewayAddr, o.WorkerMetricsBasePort = freeAddr(t), freePortRange(t, o.Workers)
		}
		first = false
		s, err = Start(t.Context(), *o)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(time.Second) })
	return s
}

func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func TestStackStartsAndStops(t *testing.T) {
	t.Parallel()
	out := &proctest.Output{}
	o := stackOptions(t, out, "FOO=bar", "WORKER_ID=from-the-user", "GATEWAY_ADDR=127.0.0.1:1")
	s := startStack(t, &o)

	if want := "http://" + o.GatewayAddr; s.GatewayURL() != want {
		t.Errorf("GatewayURL = %s, want %s", s.GatewayURL(), want)
	}
	if code, _ := get(t, s.GatewayURL()+"/health"); code != http.StatusOK {
		t.Errorf("gateway /health = %d", code)
	}
	urls := s.WorkerMetricsURLs()
	if len(urls) != 2 {
		t.Fatalf("WorkerMetricsURLs = %v", urls)
	}
	for i, u := range urls {
		if code, _ := get(t, u+"/healthz"); code != http.StatusOK {
			t.Errorf("worker %d /healthz = %d", i+1, code)
		}
	}
	var names []string
	for _, p := range s.Processes() {
		names = append(names, p.Name())
	}
	if !slices.Equal(names, []string{"gateway", "worker-1", "worker-2"}) {
		t.Errorf("Processes = %v", names)
	}

	// The base environment reaches the children; per-process variables win.
	_, body := get(t, urls[1]+"/env")
	var env []string
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FOO=bar", "WORKER_ID=worker-2", "WORKER_METRICS_ADDR=" + strings.TrimPrefix(urls[1], "http://")} {
		if !slices.Contains(env, want) {
			t.Errorf("worker-2 environment lacks %s: %v", want, env)
		}
	}
	if slices.Contains(env, "WORKER_ID=from-the-user") {
		t.Error("the base WORKER_ID was not overridden")
	}
	_, body = get(t, s.GatewayURL()+"/env")
	if !strings.Contains(string(body), `"GATEWAY_ADDR=`+o.GatewayAddr+`"`) {
		t.Errorf("gateway environment: %s", body)
	}

	if err := s.Stop(10 * time.Second); err != nil {
		t.Fatalf("Stop = %v", err)
	}
	for _, p := range s.Processes() {
		select {
		case <-p.Done():
		default:
			t.Errorf("%s not done after Stop", p.Name())
		}
		proctest.WaitGone(t, 20*time.Second, p.Pid())
	}
	if err := s.Stop(time.Second); err != nil {
		t.Errorf("second Stop = %v", err)
	}
	select {
	case p := <-s.Exited():
		t.Errorf("Exited reported %s after a requested stop", p.Name())
	default:
	}
	text := out.String()
	for _, want := range []string{"[gateway] gateway listening on", "[worker-1] worker-1 listening on", "[worker-2] worker-2 got terminated"} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}

func TestStackStartFailureNamesTheProcessAndItsOutput(t *testing.T) {
	t.Parallel()
	out := &proctest.Output{}
	o := stackOptions(t, out, "FAKE_TARGET=worker-2", "FAKE_EXIT_EARLY=3")
	// The supervisor's own log names every process it started, whether or not it got to print anything
	// before worker-2's failure stopped it.
	logs := &proctest.Output{}
	o.Logger = slog.New(slog.NewTextHandler(logs, nil))
	_, err := Start(t.Context(), o)
	if err == nil {
		t.Fatal("Start succeeded")
	}
	for _, want := range []string{"worker-2", "exit status 3", "before it was ready", "last output of worker-2", "fatal: cannot connect to broker: boom"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "worker-1") || strings.Contains(err.Error(), "gateway") {
		t.Errorf("error blames processes that did not fail:\n%v", err)
	}
	// What had started is stopped.
	var started []int
	for _, m := range regexp.MustCompile(`msg=started process=\S+ pid=(\d+)`).FindAllStringSubmatch(logs.String(), -1) {
		pid, _ := strconv.Atoi(m[1])
		started = append(started, pid)
	}
	if len(started) != 3 {
		t.Errorf("saw %d processes start, want 3:\n%s", len(started), logs)
	}
	proctest.WaitGone(t, 20*time.Second, started...)
}

func TestStackReadyTimeout(t *testing.T) {
	t.Parallel()
	out := &proctest.Output{}
	o := stackOptions(t, out, "FAKE_TARGET=gateway", "FAKE_NEVER_READY=1")
	// Long enough for the gateway to start and answer 503 at least once
	// (which the error quotes) however loaded the machine is.
	o.ReadyTimeout = 10 * time.Second
	_, err := Start(t.Context(), o)
	if err == nil {
		t.Fatal("Start succeeded")
	}
	for _, want := range []string{"gateway", "not ready within 10s", "503", "last output of gateway"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	proctest.WaitGone(t, 20*time.Second, pidsIn(out.String())...)
}

func TestStackStartCancelled(t *testing.T) {
	t.Parallel()
	out := &proctest.Output{}
	o := stackOptions(t, out, "FAKE_NEVER_READY=1")
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err := Start(ctx, o)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start = %v, want context.DeadlineExceeded", err)
	}
	proctest.WaitGone(t, 20*time.Second, pidsIn(out.String())...)
}

func TestStackRefusesATakenAddress(t *testing.T) {
	t.Parallel()
	o := stackOptions(t, &proctest.Output{})
	ln, err := net.Listen("tcp", o.GatewayAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Start(t.Context(), o)
	if err == nil || !strings.Contains(err.Error(), "gateway address "+o.GatewayAddr+" is not free") {
		t.Fatalf("Start = %v", err)
	}
	// testkit.StartStack and startStack take other ports on this error alone.
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Start = %v; want it to wrap EADDRINUSE", err)
	}

	// startStack moves to other ports and starts.
	taken := o.GatewayAddr
	s := startStack(t, &o)
	if o.GatewayAddr == taken || s.GatewayURL() != "http://"+o.GatewayAddr {
		t.Fatalf("started on %s (options %s) with %s taken", s.GatewayURL(), o.GatewayAddr, taken)
	}
	if code, _ := get(t, s.GatewayURL()+"/health"); code != http.StatusOK {
		t.Fatalf("gateway /health = %d", code)
	}
}

func TestStackMissingBinary(t *testing.T) {
	t.Parallel()
	o := stackOptions(t, &proctest.Output{})
	o.BinDir = t.TempDir()
	_, err := Start(t.Context(), o)
	if err == nil || !strings.Contains(err.Error(), GatewayBinary) || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("Start = %v", err)
	}
}

func TestStackReportsAProcessThatDies(t *testing.T) {
	t.Parallel()
	o := stackOptions(t, &proctest.Output{})
	s := startStack(t, &o)
	// Crash worker-1 only now that the whole stack is ready: a timer started
	// with the process could fire before the others answer their health
	// checks, and Start would fail instead.
	stacktest.Crash(t, s.WorkerMetricsURLs()[0])
	select {
	case p := <-s.Exited():
		if p.Name() != "worker-1" || p.ExitErr() == nil {
			t.Errorf("Exited: %s, %v", p.Name(), p.ExitErr())
		}
		if !strings.Contains(describeExit(p), "panic: something went badly wrong") {
			t.Errorf("describeExit lacks the last output:\n%s", describeExit(p))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the crash was not reported")
	}
	if err := s.Stop(5 * time.Second); err != nil {
		t.Errorf("Stop = %v", err)
	}
}

func TestStackStopKillsWhatIgnoresSIGTERM(t *testing.T) {
	t.Parallel()
	out := &proctest.Output{}
	o := stackOptions(t, out, "FAKE_TARGET=worker-1", "FAKE_IGNORE_TERM=1", "FAKE_SPAWN_CHILD=1")
	s := startStack(t, &o)
	out.WaitLine(t, 20*time.Second, "child pid")
	// Long enough for the gateway and worker-2 to exit on SIGTERM on a
	// loaded machine; worker-1 ignores it and is killed when it runs out.
	err := s.Stop(5 * time.Second)
	if err == nil || !strings.Contains(err.Error(), "worker-1") || !strings.Contains(err.Error(), "killed its process group") {
		t.Fatalf("Stop = %v", err)
	}
	if strings.Contains(err.Error(), "gateway") || strings.Contains(err.Error(), "worker-2") {
		t.Errorf("Stop blames processes that stopped cleanly: %v", err)
	}
	proctest.WaitGone(t, 20*time.Second, pidsIn(out.String())...)
}

func TestOptionsValidation(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{{Workers: -1}, {Workers: 2, WorkerMetricsBasePort: 65534}} {
		if _, err := Start(t.Context(), o); err == nil {
			t.Errorf("Start(%+v) succeeded", o)
		}
	}
}

func TestDialAddr(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"127.0.0.1:8080": "127.0.0.1:8080",
		":8080":          "127.0.0.1:8080",
		"0.0.0.0:8080":   "127.0.0.1:8080",
		"[::]:8080":      "[::1]:8080",
		"localhost:80":   "localhost:80",
	} {
		if got := dialAddr(in); got != want {
			t.Errorf("dialAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
