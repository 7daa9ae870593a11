package runner

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/scripttest"
)

// sandboxUser is the uid and gid tests run scripts as when the tests run as root (nobody/nogroup).
var sandboxUser = Credential{UID: 65534, GID: 65534}

// containments returns the containment modes to test. The PID namespace needs root or CAP_SYS_ADMIN; a
// test that cannot get one fails, with the reason, rather than pass without having run.
func containments(t *testing.T) []string {
	t.Helper()
	return []string{ContainSession, ContainPIDNamespace}
}

// newContained builds a runner in the given containment mode.
func newContained(t *testing.T, mode string, edit func(*Config)) *Runner {
	t.Helper()
	if mode == ContainPIDNamespace {
		if err := probe(testPython(t), true, nil); err != nil {
			t.Fatalf("this test runs scripts in a PID namespace, which needs root or CAP_SYS_ADMIN (CI runs as root): %v", err)
		}
	}
	return newTestRunner(t, func(c *Config) {
		c.Containment = mode
		if edit != nil {
			edit(c)
		}
	})
}

// escapeCase is a way a script's process leaves its process group, and how its run ends.
type escapeCase struct {
	script  string
	params  string
	timeout time.Duration
	status  contract.Status
}

// escapeCases are the ways TestEscapedProcessesDie and TestForkedRunnersEscapeesDie try.
var escapeCases = []escapeCase{
	{"escapes_group", `{}`, 20 * time.Second, contract.StatusCompleted},      // setsid
	{"leaves_group", `{}`, 20 * time.Second, contract.StatusCompleted},       // setpgid
	{"daemonizes", `{}`, 20 * time.Second, contract.StatusCompleted},         // fork, setsid, fork
	{"daemonizes", `{"sleep": 60}`, 5 * time.Second, contract.StatusTimeout}, // and then times out
	{"escapes_and_sleeps", `{}`, 5 * time.Second, contract.StatusTimeout},    // setsid, SIGTERM ignored
}

func (tc escapeCase) name() string { return tc.script + "/" + string(tc.status) }

// run runs the case's script on r (warm or cold) and checks its status; the fixture writes its process
// group and the escaped process's pid to a file, which run returns.
func (tc escapeCase) run(t *testing.T, r *Runner, warm bool) (leader, escaped int) {
	t.Helper()
	pidFile := filepath.Join(t.TempDir(), "pids")
	params := strings.TrimSuffix(tc.params, "}")
	if params != "{" {
		params += ","
	}
	params += fmt.Sprintf(`"pid_file": %q}`, pidFile)
	j := job(t, tc.script, params, tc.timeout)
	if warm {
		j.Warm, j.Version = true, "v1"
	}
	res := mustRun(t, r, j)
	if res.Status != tc.status {
		t.Fatalf("Status = %q, want %q (err %+v)", res.Status, tc.status, res.Err)
	}
	leader, escaped = readPids(t, pidFile)
	t.Cleanup(func() { _ = syscall.Kill(escaped, syscall.SIGKILL) }) // only if the test failed
	return leader, escaped
}

// TestEscapedProcessesDie: whatever way a script's process leaves its process group (setsid, setpgid, the
// double fork of a daemon), it does not outlive the run, in either containment mode, whether the script
// returns or times out.
func TestEscapedProcessesDie(t *testing.T) {
	t.Parallel()
	for _, mode := range containments(t) {
		for _, tc := range escapeCases {
			t.Run(mode+"/"+tc.name(), func(t *testing.T) {
				t.Parallel()
				r := newContained(t, mode, nil)
				start := time.Now()
				leader, escaped := tc.run(t, r, false)
				elapsed := time.Since(start)
				assertGone(t, leader, escaped)
				t.Logf("%s: run returned after %s; the escaped process %d is gone", mode, elapsed.Round(time.Millisecond), escaped)
			})
		}
	}
}

// TestWarmRunnerEscapeeDies: a warm runner's escaped process dies when the runner is recycled.
func TestWarmRunnerEscapeeDies(t *testing.T) {
	t.Parallel()
	for _, mode := range containments(t) {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			r := newContained(t, mode, nil)
			pidFile := filepath.Join(t.TempDir(), "pids")
			j := job(t, "escapes_group", fmt.Sprintf(`{"pid_file": %q}`, pidFile), 20*time.Second)
			j.Warm, j.Version = true, "v1"
			if res := mustRun(t, r, j); res.Status != contract.StatusCompleted {
				t.Fatalf("Status = %q, err %+v", res.Status, res.Err)
			}
			leader, escaped := readPids(t, pidFile)
			t.Cleanup(func() { _ = syscall.Kill(escaped, syscall.SIGKILL) })
			_ = r.Shutdown(t.Context()) // kills the idle runner
			assertGone(t, leader, escaped)
		})
	}
}

// TestRunawayScriptsAreKilledAtTheTimeout: a busy loop and a sleeper that ignores every signal it can are
// both stopped at their timeout.
func TestRunawayScriptsAreKilledAtTheTimeout(t *testing.T) {
	t.Parallel()
	for _, mode := range containments(t) {
		for _, script := range []string{"busy_loop", "ignores_signals"} {
			t.Run(mode+"/"+script, func(t *testing.T) {
				t.Parallel()
				r := newContained(t, mode, nil)
				const timeout = time.Second
				start := time.Now()
				res := mustRun(t, r, job(t, script, `{}`, timeout))
				elapsed := time.Since(start)
				if res.Status != contract.StatusTimeout || res.Err == nil || res.Err.Code != contract.CodeScriptTimeout {
					t.Fatalf("got %q %+v, want a script_timeout", res.Status, res.Err)
				}
				// Run returns only once the script is dead: the status above is the proof it was stopped.
				t.Logf("%s: timeout %s, answered after %s", mode, timeout, elapsed.Round(time.Millisecond))
			})
		}
	}
}

// TestForkBombIsStoppedByTheProcessLimit: a fork bomb runs into RLIMIT_NPROC, fails with a message that
// names the limit, and leaves nothing behind. The kernel does not apply the limit to root, so as root the
// script runs as another user (which is how a root worker should run scripts: SCRIPT_RUN_AS).
func TestForkBombIsStoppedByTheProcessLimit(t *testing.T) {
	t.Parallel()
	for _, mode := range containments(t) {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			r := newContained(t, mode, func(c *Config) {
				c.MaxProcesses = 32
				if os.Getuid() == 0 {
					c.RunAs, c.Python = &sandboxUser, scripttest.SandboxPython(t, int(sandboxUser.UID), "RUNNER_SANDBOX_PYTHON")
					c.WorkDir = filepath.Join(scripttest.ReachableTempDir(t), "work")
				}
			})
			if !r.ProcessLimit() {
				t.Fatal("the process limit is not enforced; the fork bomb would not be stopped")
			}
			pidDir := scripttest.ReachableTempDir(t)
			if err := os.Chmod(pidDir, 0o777); err != nil { // the script's user writes its pid file there
				t.Fatal(err)
			}
			pidFile := filepath.Join(pidDir, "pids")
			start := time.Now()
			res := mustRun(t, r, job(t, "fork_bomb", fmt.Sprintf(`{"pid_file": %q}`, pidFile), 20*time.Second))
			if res.Status != contract.StatusFailed || res.Err == nil || res.Err.Type != "BlockingIOError" ||
				!strings.Contains(res.Err.Message, "limit of") {
				t.Fatalf("got %q %+v; want a BlockingIOError that names the process limit", res.Status, res.Err)
			}
			leader, _ := readPids(t, pidFile)
			assertGone(t, leader, 0)
			t.Logf("%s: fork bomb stopped after %s: %s", mode, time.Since(start).Round(time.Millisecond), res.Err.Message)
		})
	}
}

// TestMemoryBombFailsClearly: a script that allocates past its memory limit fails with a message naming
// the limit.
func TestMemoryBombFailsClearly(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, func(c *Config) { c.MemoryLimitBytes = 200 << 20 })
	res := mustRun(t, r, job(t, "allocates", `{"bytes": 4294967296}`, 20*time.Second))
	if res.Status != contract.StatusFailed || res.Err == nil || res.Err.Code != contract.CodeScriptError ||
		res.Err.Type != "MemoryError" || !strings.Contains(res.Err.Message, "at most 200 MiB") {
		t.Fatalf("got %q %+v", res.Status, res.Err)
	}
}

// TestOutputFloodIsCapped: a script that writes a gigabyte to stdout and stderr completes; what is kept of
// its output stays within the cap.
func TestOutputFloodIsCapped(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	r := newTestRunner(t, func(c *Config) { c.Logger = slog.New(rec) })
	const mib = 256 // per stream
	start := time.Now()
	// A generous timeout: draining 512 MiB, line by line, through the race detector on a loaded machine is slow.
	res := mustRun(t, r, job(t, "floods_output", fmt.Sprintf(`{"mib": %d}`, mib), 3*time.Minute))
	elapsed := time.Since(start)
	if res.Status != contract.StatusCompleted {
		t.Fatalf("Status = %q, err %+v", res.Status, res.Err)
	}
	if len(res.OutputTail) > DefaultMaxOutputBytes {
		t.Errorf("OutputTail is %d bytes, more than %d", len(res.OutputTail), DefaultMaxOutputBytes)
	}
	rec.mu.Lock()
	records := rec.records
	rec.mu.Unlock()
	if lines := 2 * mib * 61681 / 2; records > logBudgetBytes/16+10 || records >= lines {
		t.Errorf("%d log records for %d MiB of output (%d lines): the log budget did not apply", records, 2*mib, lines)
	}
	t.Logf("%d MiB of output drained in %s (%.0f MiB/s); %d log records", 2*mib, elapsed.Round(time.Millisecond),
		float64(2*mib)/elapsed.Seconds(), records)
}

// TestScriptUserCannotReadTheWorkersSecrets: a script run as another user reads neither files only the
// worker's user may read nor the worker's /proc/<pid>/environ, and sees none of its environment.
func TestScriptUserCannotReadTheWorkersSecrets(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("running scripts as another user needs root (or CAP_SETUID and CAP_SETGID); CI runs as root")
	}
	t.Setenv("RUNNER_TEST_SECRET", "hunter2-in-the-environment")
	secretFile := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(secretFile, []byte("aws_secret_access_key = hunter2-in-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range containments(t) {
		t.Run(mode, func(t *testing.T) {
			r := newContained(t, mode, func(c *Config) {
				c.RunAs, c.Python = &sandboxUser, scripttest.SandboxPython(t, int(sandboxUser.UID), "RUNNER_SANDBOX_PYTHON")
				c.WorkDir = filepath.Join(scripttest.ReachableTempDir(t), "work")
			})
			params := fmt.Sprintf(`{"paths": [%q, %q]}`, secretFile, fmt.Sprintf("/proc/%d/environ", os.Getpid()))
			res := mustRun(t, r, job(t, "reads_files", params, 20*time.Second))
			if res.Status != contract.StatusCompleted {
				t.Fatalf("Status = %q, err %+v", res.Status, res.Err)
			}
			got := string(res.Data)
			if strings.Contains(got, "hunter2") {
				t.Fatalf("the script read a secret: %s", got)
			}
			if !strings.Contains(got, `"uid":65534`) || strings.Count(got, "PermissionError") != 2 {
				t.Fatalf("want both reads refused to uid 65534: %s", got)
			}
		})
	}
}
