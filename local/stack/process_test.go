package stack

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/proctest"
)

// startFake starts the stand-in worker binary as a single process.
func startFake(t *testing.T, ctx context.Context, name string, env ...string) (*Process, *proctest.Output) {
	t.Helper()
	out := &proctest.Output{}
	env = append([]string{"WORKER_ID=" + name, "WORKER_METRICS_ADDR=127.0.0.1:0"}, env...)
	p, err := StartProcess(ctx, name, filepath.Join(fakeBinDir, WorkerBinary), nil, env, out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(time.Second) })
	return p, out
}

func waitDone(t *testing.T, p *Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit", p.Name())
	}
}

// childPid waits for the fake's child to announce its pid.
func childPid(t *testing.T, out *proctest.Output) int {
	t.Helper()
	out.WaitLine(t, 20*time.Second, "child pid ")
	_, after, _ := strings.Cut(out.String(), "child pid ")
	pid, err := strconv.Atoi(strings.Fields(after)[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestProcessPrefixesOutputAndKeepsItsTail(t *testing.T) {
	t.Parallel()
	p, out := startFake(t, t.Context(), "w1", "FAKE_EXIT_EARLY=7")
	waitDone(t, p)

	for _, want := range []string{
		"[w1] w1 starting pid " + strconv.Itoa(p.Pid()) + "\n",
		"[w1] w1 says hello on stderr\n",
		"[w1] fatal: cannot connect to broker: boom\n", // last line had no newline
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	var ee *exec.ExitError
	if !errors.As(p.ExitErr(), &ee) || ee.ExitCode() != 7 {
		t.Errorf("ExitErr = %v, want exit status 7", p.ExitErr())
	}
	tail := p.LastOutput()
	if len(tail) == 0 || tail[len(tail)-1] != "fatal: cannot connect to broker: boom" {
		t.Errorf("LastOutput = %q", tail)
	}
	if err := p.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("Signal after exit = %v, want os.ErrProcessDone", err)
	}
	if err := p.Stop(time.Second); err != nil {
		t.Errorf("Stop after exit = %v, want nil", err)
	}
}

func TestProcessStopIsCleanAndIdempotent(t *testing.T) {
	t.Parallel()
	p, out := startFake(t, t.Context(), "w1")
	out.WaitLine(t, 20*time.Second, "listening on")
	if p.ExitErr() != nil {
		t.Fatal("ExitErr before exit must be nil")
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatalf("Stop = %v", err)
	}
	if !strings.Contains(out.String(), "[w1] w1 got terminated, draining") {
		t.Errorf("the process did not see SIGTERM:\n%s", out)
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Errorf("second Stop = %v", err)
	}
	proctest.WaitGone(t, 20*time.Second, p.Pid())
}

func TestProcessStopReportsFailureStatus(t *testing.T) {
	t.Parallel()
	p, out := startFake(t, t.Context(), "w1", "FAKE_TERM_EXIT=4")
	out.WaitLine(t, 20*time.Second, "listening on")
	err := p.Stop(5 * time.Second)
	if err == nil || !strings.Contains(err.Error(), "exit status 4") {
		t.Fatalf("Stop = %v, want an error with exit status 4", err)
	}
}

// A process that ignores SIGTERM is killed with its whole group, including
// a child that also ignores SIGTERM.
func TestProcessStopKillsTheGroup(t *testing.T) {
	t.Parallel()
	p, out := startFake(t, t.Context(), "w1", "FAKE_IGNORE_TERM=1", "FAKE_SPAWN_CHILD=1")
	child := childPid(t, out)
	out.WaitLine(t, 20*time.Second, "listening on")

	start := time.Now()
	err := p.Stop(300 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "did not exit within 300ms") {
		t.Fatalf("Stop = %v, want a 'did not exit' error", err)
	}
	// No upper bound on a loaded machine; the figure is for reading.
	t.Logf("Stop took %s with a 300ms timeout", time.Since(start))
	if again := p.Stop(time.Second); again == nil || again.Error() != err.Error() {
		t.Errorf("second Stop = %v, want the first result", again)
	}
	proctest.WaitGone(t, 20*time.Second, p.Pid(), child)
}

// When the leader exits by itself, what it left in its group is killed.
// (The fake starts its crash timer only after its child has printed its pid,
// so the pid is in the output however slowly the child starts.)
func TestProcessExitKillsLeftovers(t *testing.T) {
	t.Parallel()
	p, out := startFake(t, t.Context(), "w1", "FAKE_SPAWN_CHILD=1", "FAKE_CRASH_AFTER=300ms")
	child := childPid(t, out)
	waitDone(t, p)
	proctest.WaitGone(t, 20*time.Second, child)
}

func TestProcessSignalReachesTheGroup(t *testing.T) {
	t.Parallel()
	p, out := startFake(t, t.Context(), "w1", "FAKE_SPAWN_CHILD=1")
	child := childPid(t, out)
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	var ee *exec.ExitError
	if !errors.As(p.ExitErr(), &ee) {
		t.Errorf("ExitErr = %v, want an exit error", p.ExitErr())
	}
	proctest.WaitGone(t, 20*time.Second, child)
}

func TestProcessStopsWhenContextIsCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	p, out := startFake(t, ctx, "w1")
	out.WaitLine(t, 20*time.Second, "listening on")
	cancel()
	waitDone(t, p)
	if !strings.Contains(out.String(), "got terminated") {
		t.Errorf("cancellation did not send SIGTERM:\n%s", out)
	}
}

func TestStartProcessErrors(t *testing.T) {
	t.Parallel()
	if _, err := StartProcess(t.Context(), "x", filepath.Join(t.TempDir(), "missing"), nil, nil, nil); err == nil {
		t.Error("starting a missing binary succeeded")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := StartProcess(ctx, "x", filepath.Join(fakeBinDir, WorkerBinary), nil, nil, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("start with a cancelled context = %v", err)
	}
}
