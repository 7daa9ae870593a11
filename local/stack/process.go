package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultStopGrace is how long a process whose StartProcess context is
// cancelled gets between SIGTERM and SIGKILL. It covers the worker's drain.
const DefaultStopGrace = 35 * time.Second

// outputTailLines is how many of its last output lines a Process keeps for
// error messages.
const outputTailLines = 20

// Process is one supervised child process. It runs in its own process group
// (its pid is the group id), so signals sent through it reach everything it
// spawned, and a terminal's Ctrl-C never reaches it directly: the supervisor
// decides when and how it stops.
//
// When the process itself exits, whatever it left running in its group is
// killed, so a crashed worker never leaves orphaned scripts behind.
type Process struct {
	name string
	cmd  *exec.Cmd
	out  *lineWriter

	done    chan struct{}
	exitErr error // written before done is closed

	stopOnce sync.Once
	stopErr  error
}

// StartProcess starts path with args in a new process group. env is its whole
// environment (nil means this process's environment, as with os/exec); when a
// variable appears twice, the last value wins. Its stdout and stderr are
// merged and copied to out line by line, each line prefixed with "[name] ";
// out may be nil, and may be shared by several processes: lines are never
// interleaved.
//
// If ctx is cancelled while the process runs, its group gets SIGTERM and,
// DefaultStopGrace later, SIGKILL. Pass context.WithoutCancel(ctx) to let the
// process outlive ctx and end it with Stop.
func StartProcess(ctx context.Context, name, path string, args, env []string, out io.Writer) (*Process, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	if out == nil {
		out = io.Discard
	}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = env
	cmd.SysProcAttr = newSysProcAttr()
	// On cancellation signal the whole group, not just the leader; WaitDelay
	// then SIGKILLs the leader and reap kills the rest of the group.
	cmd.Cancel = func() error { return signalGroup(cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = DefaultStopGrace

	// One pipe for both streams keeps their relative order. The copy is ours,
	// not os/exec's, so Wait never blocks on a grandchild holding the pipe.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, path, err)
	}
	w.Close()

	p := &Process{
		name: name,
		cmd:  cmd,
		out:  newLineWriter(name, out, outputTailLines),
		done: make(chan struct{}),
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		p.out.copyFrom(r)
	}()
	go p.reap(r, copied)
	return p, nil
}

// reap waits for the leader, kills what is left of its group, lets the output
// copy finish, and only then reports the process as done.
func (p *Process) reap(r *os.File, copied <-chan struct{}) {
	err := p.cmd.Wait()
	// The kernel does not reuse a pid while a group with that id still has
	// members, so this reaches only leftovers of this process; ESRCH (group
	// already empty) is the normal case.
	_ = signalGroup(p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-copied:
	case <-time.After(2 * time.Second):
		// Something outside the group (it called setsid) still holds the
		// pipe; stop reading rather than wait for it.
		r.Close()
		<-copied
	}
	r.Close()
	p.exitErr = err
	close(p.done)
}

// Name returns the name given to StartProcess, e.g. "worker-1".
func (p *Process) Name() string { return p.name }

// Pid returns the process id, which is also its process group id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited and been reaped, and what it
// left in its process group has been killed.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitErr returns what waiting for the process returned (nil for exit status
// 0, an *exec.ExitError otherwise). It is nil until Done is closed.
func (p *Process) ExitErr() error {
	select {
	case <-p.done:
		return p.exitErr
	default:
		return nil
	}
}

// LastOutput returns up to the last 20 lines the process printed, without the
// name prefix.
func (p *Process) LastOutput() []string { return p.out.tail() }

// Signal sends sig to the process's whole group. It returns os.ErrProcessDone
// when the process has already exited.
func (p *Process) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("signal %s: unsupported signal %v", p.name, sig)
	}
	select {
	case <-p.done:
		return os.ErrProcessDone
	default:
	}
	if err := signalGroup(p.Pid(), s); err != nil {
		return fmt.Errorf("signal %s: %w", p.name, err)
	}
	return nil
}

// Stop sends SIGTERM to the process group, waits up to timeout for the
// process to exit, then SIGKILLs the group; it returns once the process is
// reaped. It reports an error when the process had to be killed or exited
// with a failure status (exit status 0 or death by the SIGTERM itself count
// as a clean stop). A process that had already exited before Stop yields nil:
// see ExitErr for how it ended. Stop is safe to call more than once and from
// several goroutines; later calls wait for and return the first one's result.
func (p *Process) Stop(timeout time.Duration) error {
	p.stopOnce.Do(func() { p.stopErr = p.stop(timeout) })
	return p.stopErr
}

func (p *Process) stop(timeout time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			<-p.done
			return nil
		}
		return err
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		if !stoppedCleanly(p.exitErr) {
			return fmt.Errorf("%s (pid %d) exited uncleanly after SIGTERM: %w", p.name, p.Pid(), p.exitErr)
		}
		return nil
	case <-timer.C:
		_ = signalGroup(p.Pid(), syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s (pid %d) did not exit within %s of SIGTERM; killed its process group", p.name, p.Pid(), timeout)
	}
}

// stoppedCleanly reports whether err, returned by Wait after the process was
// sent SIGTERM, means it shut down as asked: exit status 0, death by
// SIGTERM/SIGINT, or the 128+signal status shells and wrappers use for that.
func stoppedCleanly(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// The StartProcess context was cancelled and the process then
		// exited with status 0.
		return true
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal() == syscall.SIGTERM || ws.Signal() == syscall.SIGINT
	}
	switch ee.ExitCode() {
	case 128 + int(syscall.SIGTERM), 128 + int(syscall.SIGINT):
		return true
	}
	return false
}

// signalGroup sends sig to the process group pgid; an empty group is reported
// as os.ErrProcessDone.
func signalGroup(pgid int, sig syscall.Signal) error {
	if pgid <= 0 {
		return fmt.Errorf("invalid process group %d", pgid)
	}
	err := syscall.Kill(-pgid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

// ExitReport describes how the process ended, followed by the last lines it
// printed, for messages a person reads. Call it after Done is closed.
func (p *Process) ExitReport() string { return describeExit(p) }

// describeExit formats how a process ended plus its last output.
func describeExit(p *Process) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (pid %d) exited", p.name, p.Pid())
	if err := p.ExitErr(); err != nil {
		fmt.Fprintf(&b, ": %v", err)
	} else {
		b.WriteString(" with status 0")
	}
	b.WriteString(formatTail(p))
	return b.String()
}

// formatTail renders the process's last output lines as an indented block,
// or a note that it printed nothing.
func formatTail(p *Process) string {
	lines := p.LastOutput()
	if len(lines) == 0 {
		return "\n  (" + p.name + " printed nothing)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n  last output of %s:", p.name)
	for _, l := range lines {
		b.WriteString("\n    ")
		b.WriteString(l)
	}
	return b.String()
}
