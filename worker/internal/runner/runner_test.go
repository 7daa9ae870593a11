package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/scripttest"
	"github.com/scrapeplatform/platform/shared/testlog"
)

// testPython is the interpreter the tests use: $RUNNER_TEST_PYTHON (e.g. a Python 3.8 build, to check the
// oldest supported version) or python3.
func testPython(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("RUNNER_TEST_PYTHON"); p != "" {
		return p
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("the runner tests need python3 (or RUNNER_TEST_PYTHON)")
	}
	return "python3"
}

func testLogger(t *testing.T) *slog.Logger { return testlog.New(t, slog.LevelDebug) }

// newTestRunner builds a Runner with a private WorkDir; edit may change the Config first.
func newTestRunner(t *testing.T, edit func(*Config)) *Runner {
	t.Helper()
	cfg := Config{
		Python:    testPython(t),
		WorkDir:   filepath.Join(t.TempDir(), "work"),
		KillGrace: 500 * time.Millisecond,
		Logger:    testLogger(t),
	}
	if edit != nil {
		edit(&cfg)
	}
	if cfg.Containment == "" {
		// The suites written before namespaces look at the run from the host (its /proc, files in the
		// test's temporary folder): they keep a PID namespace where one can be made. ns_test.go tests
		// ContainNamespaces.
		cfg.Containment = ContainSession
		if probe(cfg.Python, true, nil) == nil {
			cfg.Containment = ContainPIDNamespace
		}
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}

func scriptDir(t *testing.T, name string) string {
	t.Helper()
	return scripttest.Path(t, name)
}

func job(t *testing.T, script, params string, timeout time.Duration) Job {
	return Job{
		RequestID:  "req-" + strings.ReplaceAll(t.Name(), "/", "-"),
		ScriptName: script,
		ScriptDir:  scriptDir(t, script),
		Parameters: json.RawMessage(params),
		Timeout:    timeout,
	}
}

func mustRun(t *testing.T, r *Runner, j Job) Result {
	t.Helper()
	res, err := r.Run(t.Context(), j)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	t.Logf("status=%s err=%+v duration=%s", res.Status, res.Err, res.Duration)
	return res
}

func TestRunOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		script  string
		params  string
		edit    func(*Config)
		status  contract.Status
		data    string // compared as JSON, when status is completed
		code    contract.Code
		typ     string
		message string // substring of Err.Message
		detail  string // substring of Err.Detail
	}{
		{script: "returns_dict", params: `{"url": "https://example.com", "depth": 2, "nested": {"ü": [true, null]}}`,
			status: contract.StatusCompleted,
			data:   `{"title": "Example Domain", "items": [1, 2.5, true, null, "ü"], "params": {"url": "https://example.com", "depth": 2, "nested": {"ü": [true, null]}}}`},
		{script: "returns_dict", params: "", status: contract.StatusCompleted,
			data: `{"title": "Example Domain", "items": [1, 2.5, true, null, "ü"], "params": {}}`},
		{script: "async_def", params: `{"n": 5}`, status: contract.StatusCompleted, data: `{"async": true, "n": 5}`},
		{script: "returns_none", params: `null`, status: contract.StatusCompleted, data: `null`},
		{script: "thread_left_running", status: contract.StatusCompleted, data: `{"done": true}`},
		{script: "raises", status: contract.StatusFailed, code: contract.CodeScriptError, typ: "ValueError",
			message: "boom", detail: "about to fail"},
		{script: "raises_empty", status: contract.StatusFailed, code: contract.CodeScriptError, typ: "QuotaExceeded",
			message: "QuotaExceeded"},
		{script: "syntax_error", status: contract.StatusFailed, code: contract.CodeScriptError, typ: "SyntaxError"},
		{script: "import_error", status: contract.StatusFailed, code: contract.CodeScriptError,
			typ: "ModuleNotFoundError", message: "module_that_does_not_exist"},
		{script: "no_scrape", status: contract.StatusFailed, code: contract.CodeScriptError,
			message: "defines no scrape(params) function"},
		{script: "returns_set", status: contract.StatusFailed, code: contract.CodeInvalidOutput, typ: "set",
			message: "['tags'][1] is a set"},
		{script: "returns_nan", status: contract.StatusFailed, code: contract.CodeInvalidOutput, message: "nan"},
		{script: "returns_circular", status: contract.StatusFailed, code: contract.CodeInvalidOutput,
			message: "circular reference"},
		{script: "huge_result", params: `{"bytes": 1048576}`, status: contract.StatusFailed,
			code: contract.CodeOutputTooLarge, message: "the limit is 409600"},
		{script: "huge_result", params: `{"bytes": 2000}`, edit: func(c *Config) { c.MaxResultBytes = 1000 },
			status: contract.StatusFailed, code: contract.CodeOutputTooLarge},
		{script: "floods_result_fd", status: contract.StatusFailed, code: contract.CodeOutputTooLarge},
		{script: "sys_exit", status: contract.StatusFailed, code: contract.CodeScriptCrashed,
			message: "exited with status 3", detail: "leaving early"},
		{script: "os_exit", status: contract.StatusFailed, code: contract.CodeScriptCrashed, message: "exited with status 7"},
		{script: "kills_itself", status: contract.StatusFailed, code: contract.CodeScriptCrashed,
			message: "killed by signal 9 (killed) before returning a result; possibly out of memory"},
		{script: "segfault", status: contract.StatusFailed, code: contract.CodeScriptCrashed,
			message: "signal 11", detail: "Segmentation fault"},
		// The limit leaves a normal script alone and stops one that allocates 1 GiB.
		{script: "returns_dict", edit: func(c *Config) { c.MemoryLimitBytes = 200 << 20 },
			status: contract.StatusCompleted, data: `{"title": "Example Domain", "items": [1, 2.5, true, null, "ü"], "params": {}}`},
		{script: "allocates", edit: func(c *Config) { c.MemoryLimitBytes = 200 << 20 },
			status: contract.StatusFailed, code: contract.CodeScriptError, typ: "MemoryError"},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprintf("%d_%s", i, tt.script), func(t *testing.T) {
			t.Parallel()
			r := newTestRunner(t, tt.edit)
			start := time.Now()
			res := mustRun(t, r, job(t, tt.script, tt.params, 20*time.Second))
			t.Logf("Run returned after %s", time.Since(start).Round(time.Millisecond))
			if res.Status != tt.status {
				t.Fatalf("Status = %q, want %q (err %+v)", res.Status, tt.status, res.Err)
			}
			if tt.status == contract.StatusCompleted {
				if res.Err != nil {
					t.Errorf("Err = %+v, want nil", res.Err)
				}
				assertJSONEqual(t, res.Data, tt.data)
				return
			}
			if res.Data != nil {
				t.Errorf("Data = %s, want none", res.Data)
			}
			if res.Err == nil {
				t.Fatal("Err = nil")
			}
			if res.Err.Code != tt.code {
				t.Errorf("Code = %q, want %q (message %q)", res.Err.Code, tt.code, res.Err.Message)
			}
			if tt.typ != "" && res.Err.Type != tt.typ {
				t.Errorf("Type = %q, want %q", res.Err.Type, tt.typ)
			}
			if !strings.Contains(res.Err.Message, tt.message) {
				t.Errorf("Message = %q, want it to contain %q", res.Err.Message, tt.message)
			}
			if !strings.Contains(res.Err.Detail, tt.detail) {
				t.Errorf("Detail = %q, want it to contain %q", res.Err.Detail, tt.detail)
			}
		})
	}
}

// runBeforeSleepersWake is mustRun for the fixtures that leave a process sleeping 60 s (holding the run's
// stdout): it runs j under a hang guard shorter than that sleep and fails if Run returned only after the
// guard's deadline. A Run that waited for the sleeper (its stdout, its exit) cannot return before the sleep
// ends, so it always trips the guard; a correct Run returns once the script is done and the sleeper killed.
// The guard is tens of seconds, not a speed claim; how long Run took is logged.
func runBeforeSleepersWake(t *testing.T, r *Runner, j Job) Result {
	t.Helper()
	const guard = 45 * time.Second // < the fixtures' 60 s sleeps
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	start := time.Now()
	res, err := r.Run(ctx, j)
	elapsed := time.Since(start)
	t.Logf("Run returned after %s: status=%s err=%+v duration=%s", elapsed.Round(time.Millisecond), res.Status, res.Err, res.Duration)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("Run returned only after its %s hang guard, as if it had waited for the process the script left sleeping", guard)
	}
	return res
}

func TestRunExceptionDetail(t *testing.T) {
	t.Parallel()
	res := mustRun(t, newTestRunner(t, nil), job(t, "raises", "", 20*time.Second))
	if res.Err == nil {
		t.Fatalf("Err = nil, result %+v", res)
	}
	d := res.Err.Detail
	// The traceback starts at the script (the runner's own frames are dropped), ends with the exception,
	// and is followed by the output tail.
	for _, want := range []string{"Traceback (most recent call last)", "scraper.py", "in helper", "ValueError: boom", "about to fail"} {
		if !strings.Contains(d, want) {
			t.Errorf("Detail lacks %q:\n%s", want, d)
		}
	}
	if strings.Contains(d, `File "<string>"`) {
		t.Errorf("Detail shows the runner's frames:\n%s", d)
	}
	if strings.Index(d, "ValueError: boom") > strings.Index(d, "about to fail") {
		t.Errorf("the traceback should come before the output tail:\n%s", d)
	}
}

// recorder is a slog handler that counts records and keeps the messages of warnings.
type recorder struct {
	mu       sync.Mutex
	records  int
	warnings []string
}

func (h *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *recorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recorder) WithGroup(string) slog.Handler            { return h }
func (h *recorder) Handle(_ context.Context, rec slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records++
	if rec.Level >= slog.LevelWarn {
		h.warnings = append(h.warnings, rec.Message)
	}
	return nil
}

func TestRunNoisyOutput(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	r := newTestRunner(t, func(c *Config) { c.Logger = slog.New(rec) })
	const lines = 100_000
	res := mustRun(t, r, job(t, "noisy", fmt.Sprintf(`{"lines": %d}`, lines), 60*time.Second))
	if res.Status != contract.StatusCompleted {
		t.Fatalf("Status = %q, err %+v", res.Status, res.Err)
	}
	assertJSONEqual(t, res.Data, fmt.Sprintf(`{"printed": %d}`, lines))
	if len(res.OutputTail) > DefaultMaxOutputBytes {
		t.Errorf("OutputTail is %d bytes, more than %d", len(res.OutputTail), DefaultMaxOutputBytes)
	}
	for _, want := range []string{fmt.Sprintf("line %d\n", lines-1), "last line\n"} {
		if !strings.Contains(res.OutputTail, want) {
			t.Errorf("OutputTail lacks %q; its end: %q", want, tailOf(res.OutputTail, 200))
		}
	}
	// stdout and stderr are separate pipes, so only the order within each stream is certain.
	if i, j := strings.Index(res.OutputTail, fmt.Sprintf("line %d\n", lines-1)), strings.Index(res.OutputTail, "last line\n"); i > j {
		t.Errorf("stdout lines out of order in the tail; its end: %q", tailOf(res.OutputTail, 200))
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.records >= lines {
		t.Errorf("%d records logged for %d lines: the log budget did not apply", rec.records, lines)
	}
	if !slices.Contains(rec.warnings, "script output was truncated in the log") {
		t.Errorf("no truncation warning among %q", rec.warnings)
	}
}

func TestRunTimeoutKillsGrandchildren(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	pidFile := filepath.Join(t.TempDir(), "pids")
	params := fmt.Sprintf(`{"pid_file": %q}`, pidFile)
	// The timeout leaves the script time to start its grandchild and write the pid file on a loaded machine.
	res := runBeforeSleepersWake(t, r, job(t, "grandchild_sleeps", params, 5*time.Second))

	if res.Status != contract.StatusTimeout || res.Err == nil || res.Err.Code != contract.CodeScriptTimeout {
		t.Fatalf("got status %q, err %+v; want a script_timeout", res.Status, res.Err)
	}
	if want := "script did not finish within 5s and was stopped"; res.Err.Message != want {
		t.Errorf("Message = %q, want %q", res.Err.Message, want)
	}
	leader, grandchild := readPids(t, pidFile)
	assertGone(t, leader, grandchild)
}

func TestRunContextCancelled(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	pidFile := filepath.Join(t.TempDir(), "pids")
	params := fmt.Sprintf(`{"pid_file": %q}`, pidFile)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		// Cancel once the script is surely running (it has started its grandchild).
		for ctx.Err() == nil {
			if _, err := os.Stat(pidFile); err == nil {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	res, err := r.Run(ctx, job(t, "grandchild_sleeps", params, 50*time.Second))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %+v, %v; want an error wrapping context.Canceled", res, err)
	}
	if contract.Classify(err) != contract.Cancelled {
		t.Errorf("Classify(%v) = %s, want cancelled", err, contract.Classify(err))
	}
	leader, grandchild := readPids(t, pidFile)
	assertGone(t, leader, grandchild)
}

func TestRunContextAlreadyDone(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), time.Nanosecond)
	defer cancel()
	<-ctx.Done()
	if _, err := r.Run(ctx, job(t, "returns_dict", "", time.Second)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want an error wrapping context.DeadlineExceeded", err)
	}
}

// Not parallel: t.Setenv changes the whole test process's environment.
func TestRunEnvironment(t *testing.T) {
	t.Setenv("RABBITMQ_URL", "amqp://secret")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("PYTHONPATH", "/should/not/appear")
	r := newTestRunner(t, nil)
	j := job(t, "environment", "", 20*time.Second)
	j.RequestID, j.ScriptName = "req-42", "environment"
	res := mustRun(t, r, j)
	if res.Status != contract.StatusCompleted {
		t.Fatalf("Status = %q, err %+v", res.Status, res.Err)
	}
	var got struct {
		Env     map[string]string `json:"env"`
		Cwd     string            `json:"cwd"`
		SysPath []string          `json:"sys_path"`
		Stdin   string            `json:"stdin"`
		Flags   map[string]int    `json:"flags"`
	}
	if err := json.Unmarshal(res.Data, &got); err != nil {
		t.Fatal(err)
	}
	home := got.Env["HOME"]
	want := map[string]string{
		"PATH":                    filepath.Dir(r.Python()) + ":/usr/local/bin:/usr/bin:/bin",
		"HOME":                    home,
		"TMPDIR":                  home,
		"LANG":                    "C.UTF-8",
		"PYTHONUNBUFFERED":        "1",
		"PYTHONDONTWRITEBYTECODE": "1",
		"SCRAPER_REQUEST_ID":      "req-42",
		"SCRAPER_SCRIPT_NAME":     "environment",
	}
	if !reflect.DeepEqual(got.Env, want) {
		t.Errorf("environment = %v, want exactly %v", got.Env, want)
	}
	if filepath.Dir(home) != r.scratch.dir || filepath.Dir(r.scratch.dir) != r.cfg.WorkDir || !strings.HasPrefix(filepath.Base(home), "run-") {
		t.Errorf("HOME = %q, want a run-* folder in this runner's scratch folder %q in %q", home, r.scratch.dir, r.cfg.WorkDir)
	}
	if got.Cwd != home {
		t.Errorf("cwd = %q, want HOME %q", got.Cwd, home)
	}
	if _, err := os.Stat(home); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the run's folder %s is still there after the run (stat: %v)", home, err)
	}
	if len(got.SysPath) == 0 || got.SysPath[0] != j.ScriptDir {
		t.Errorf("sys.path[0] = %v, want the script folder %q", got.SysPath, j.ScriptDir)
	}
	if slices.Contains(got.SysPath, "/should/not/appear") {
		t.Errorf("PYTHONPATH reached sys.path: %v", got.SysPath)
	}
	if got.Stdin != "" {
		t.Errorf("the script read %q from stdin, want nothing", got.Stdin)
	}
	if got.Flags["isolated"] != 1 || got.Flags["no_site"] != 1 || got.Flags["dont_write_bytecode"] != 1 {
		t.Errorf("interpreter flags = %v, want isolated, without site, without bytecode", got.Flags)
	}
	// Without site, no interpreter-wide packages are importable: scripts see the standard library only.
	for _, p := range got.SysPath {
		if strings.Contains(p, "site-packages") || strings.Contains(p, "dist-packages") {
			t.Errorf("sys.path holds %q; scripts must not see the interpreter's packages", p)
		}
	}
}

func TestRunRejectsBadJobs(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	for _, j := range []Job{
		job(t, "returns_dict", `[1, 2]`, time.Second),
		job(t, "returns_dict", `{"a":`, time.Second),
		job(t, "returns_dict", `{}`, 0),
	} {
		if res, err := r.Run(t.Context(), j); err == nil {
			t.Errorf("Run(params %s, timeout %s) = %+v, nil; want an error", j.Parameters, j.Timeout, res)
		}
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	if !filepath.IsAbs(r.Python()) || strings.Contains(r.Python(), "shims") {
		t.Errorf("Python() = %q, want the interpreter's own absolute path", r.Python())
	}
	if r.cfg.MaxResultBytes != DefaultMaxResultBytes || r.cfg.MaxOutputBytes != DefaultMaxOutputBytes {
		t.Errorf("defaults not applied: %+v", r.cfg)
	}
	if fi, err := os.Stat(r.cfg.WorkDir); err != nil || !fi.IsDir() {
		t.Errorf("WorkDir %q was not created: %v", r.cfg.WorkDir, err)
	}

	for name, cfg := range map[string]Config{
		"no work dir":     {Python: testPython(t)},
		"negative limits": {Python: testPython(t), WorkDir: t.TempDir(), MaxResultBytes: -1, MemoryLimitBytes: -1},
		"no such python":  {Python: "python-that-does-not-exist", WorkDir: t.TempDir()},
		"not python":      {Python: "true", WorkDir: t.TempDir()},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: New succeeded, want an error", name)
		}
	}
}

// TestRunnerSourceIsPython38 checks that runner.py parses as Python 3.8 (the oldest supported version).
// ast's feature_version is best effort; running the whole suite with RUNNER_TEST_PYTHON set to a 3.8
// interpreter is the full check.
func TestRunnerSourceIsPython38(t *testing.T) {
	t.Parallel()
	cmd := exec.CommandContext(t.Context(), testPython(t), "-I", "-c",
		"import ast, sys; ast.parse(sys.stdin.read(), '<runner.py>', feature_version=(3, 8))")
	cmd.Stdin = strings.NewReader(runnerSource)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("runner.py is not Python 3.8: %v\n%s", err, out)
	}
}

func assertJSONEqual(t *testing.T, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("Data %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad expectation %q: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("Data = %s, want %s", got, want)
	}
}

func tailOf(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// readPids reads the "leader grandchild" pids that the grandchild_sleeps fixture writes.
func readPids(t *testing.T, file string) (leader, grandchild int) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the script did not get as far as starting its grandchild: %v", err)
	}
	if _, err := fmt.Sscanf(string(b), "%d %d", &leader, &grandchild); err != nil {
		t.Fatalf("pid file %q: %v", b, err)
	}
	return leader, grandchild
}

// assertGone waits briefly (a SIGKILLed process takes a moment to die) for the grandchild and every member
// of the group led by leader to be gone. Zombies count as gone: they run no code, and who reaps an orphan
// depends on the container's init.
func assertGone(t *testing.T, leader, grandchild int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		live := liveGroupMembers(t, leader)
		if isLive(grandchild) && !slices.Contains(live, grandchild) {
			live = append(live, grandchild)
		}
		if len(live) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes still alive after the run: %v (group %d, grandchild %d)", live, leader, grandchild)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// procStat returns the state and process group of pid from /proc, or ok=false if there is no such process.
func procStat(pid int) (state byte, pgrp int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 3 {
		return 0, 0, false
	}
	pgrp, err = strconv.Atoi(fields[2])
	if err != nil {
		return 0, 0, false
	}
	return fields[0][0], pgrp, true
}

func isLive(pid int) bool {
	state, _, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

func liveGroupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("cannot scan /proc: %v", err)
	}
	var live []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if state, pgrp, ok := procStat(pid); ok && pgrp == pgid && state != 'Z' && state != 'X' {
			live = append(live, pid)
		}
	}
	return live
}

func TestRunKillsWhatTheScriptLeftBehind(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	pidFile := filepath.Join(t.TempDir(), "pids")
	res := runBeforeSleepersWake(t, r, job(t, "leaves_grandchild", fmt.Sprintf(`{"pid_file": %q}`, pidFile), 20*time.Second))
	if res.Status != contract.StatusCompleted {
		t.Fatalf("Status = %q, err %+v", res.Status, res.Err)
	}
	leader, grandchild := readPids(t, pidFile)
	assertGone(t, leader, grandchild)
}

// TestRunEscapedProcess: a process that leaves the group (setsid) and holds the run's stdout neither delays
// the run nor outlives it, with the default containment (TestEscapedProcessesDie covers each mode).
func TestRunEscapedProcess(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	pidFile := filepath.Join(t.TempDir(), "pids")
	res := runBeforeSleepersWake(t, r, job(t, "escapes_group", fmt.Sprintf(`{"pid_file": %q}`, pidFile), 20*time.Second))
	leader, escaped := readPids(t, pidFile)
	t.Cleanup(func() { _ = syscall.Kill(escaped, syscall.SIGKILL) }) // only if the test failed
	if res.Status != contract.StatusCompleted {
		t.Fatalf("Status = %q, err %+v", res.Status, res.Err)
	}
	assertGone(t, leader, escaped)
}

// is_async_function answers as inspect.iscoroutinefunction (its oracle) for every kind of scrape a script
// can define, without importing inspect for a plain function.
func TestIsAsyncFunctionMatchesInspect(t *testing.T) {
	t.Parallel()
	check := `
import sys
src = sys.stdin.read()
g = {"__name__": "runner_under_test"}
exec(compile(src, "runner.py", "exec"), g)
is_async_function = g["is_async_function"]
assert "inspect" not in sys.modules, "loading runner.py imported inspect"

import functools

def plain(params): return params
async def coro(params): return params
def gen(params): yield params
async def agen(params): yield params
class C:
    def m(self, params): return params
    async def am(self, params): return params
    @staticmethod
    async def sam(params): return params
    @classmethod
    async def cam(cls, params): return params
    async def __call__(self, params): return params

assert not is_async_function(plain)
assert is_async_function(coro)
assert "inspect" not in sys.modules, "a plain function imported inspect"

import inspect
cases = {
    "def": plain, "async def": coro, "generator": gen, "async generator": agen, "lambda": lambda p: p,
    "method": C().m, "async method": C().am, "async staticmethod": C.sam, "async classmethod": C.cam,
    "callable instance": C(), "partial": functools.partial(plain), "async partial": functools.partial(coro, {}),
    "partial of partial": functools.partial(functools.partial(coro)), "partial of async method": functools.partial(C().am),
    "method of a partial": functools.partial(C.am, C()), "builtin": len, "class": C, "None": None,
}
bad = [name for name, f in cases.items() if is_async_function(f) != inspect.iscoroutinefunction(f)]
assert not bad, "differs from inspect.iscoroutinefunction for: %s" % bad
print("ok", len(cases))
`
	cmd := exec.CommandContext(t.Context(), testPython(t), "-I", "-S", "-B", "-c", check)
	cmd.Stdin = strings.NewReader(runnerSource)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "ok ") {
		t.Fatalf("%v\n%s", err, out)
	}
}
