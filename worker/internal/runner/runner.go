package runner

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/worker/internal/egress"
)

//go:embed runner.py
var runnerSource string

const (
	// resultEnvelopeBytes is what the result pipe may carry beyond MaxResultBytes: the {"ok":...} envelope,
	// or a failure document (runner.py caps message and traceback at a few KiB of characters).
	resultEnvelopeBytes = 64 * 1024
	// probeTimeout bounds New's question to the interpreter.
	probeTimeout = 30 * time.Second
)

// errTimeout and errResultTooLarge are the causes with which Run stops a child itself.
var (
	errTimeout        = errors.New("script timeout")
	errResultTooLarge = errors.New("result too large")
)

// Job is one run of one script.
type Job struct {
	// RequestID identifies the scrape in logs and in the child's SCRAPER_REQUEST_ID.
	RequestID string
	// ScriptName names the script in logs and in the child's SCRAPER_SCRIPT_NAME.
	ScriptName string
	// ScriptDir is the folder that holds scraper.py, already resolved and validated by the caller.
	ScriptDir string
	// Parameters is the JSON object passed to scrape(params); empty or null means {}.
	Parameters json.RawMessage
	// Timeout is the script's own time limit.
	Timeout time.Duration
	// Version identifies the script's content, for logs.
	Version string
	// Content identifies the script folder's files (repository.Script.Content); warm runners are kept per
	// content, so a new version with the same files keeps them. Empty means Version.
	Content string
	// Python, when set, is the interpreter of the script's own environment (a venv's bin/python). It runs
	// with its site module, which adds only the venv's packages; the worker's interpreter runs with -S.
	Python string
	// MemoryLimitBytes overrides Config.MemoryLimitBytes when positive.
	MemoryLimitBytes int64
	// Warm runs the job on a long-lived runner that imported the script once (see warm.go) instead of a
	// fresh process.
	Warm bool
	// Threads (with Warm) shares the runner of a plain def scrape too: it serves many calls at once, each in
	// a thread of its own (manifest "isolation": "threads"). An async def scrape is shared either way.
	Threads bool
	// MaxResultBytes overrides Config.MaxResultBytes when positive: the worker gives a job's run (whose
	// result may be claim-checked) SCRAPE_MAX_RESULT_MB. Warm runners are kept per limit (warmKey).
	MaxResultBytes int
}

// resultLimit is job's result limit: its own, else the configured one.
func (r *Runner) resultLimit(job Job) int {
	if job.MaxResultBytes > 0 {
		return job.MaxResultBytes
	}
	return r.cfg.MaxResultBytes
}

// Result is the outcome of a run that reached the script.
type Result struct {
	// Status is completed, failed or timeout.
	Status contract.Status
	// Data is the script's return value as JSON, when Status is completed.
	Data json.RawMessage
	// Err says why the run failed or timed out; nil when completed.
	Err *contract.Error
	// Duration is the child's wall-clock time, from start to exit.
	Duration time.Duration
	// OutputTail is the last MaxOutputBytes of the script's combined stdout and stderr.
	OutputTail string
}

// Runner runs scripts. It is safe for concurrent use; each Run starts its own child.
type Runner struct {
	cfg     Config
	python  string // absolute path of the interpreter
	path    string // PATH of the child
	warm    *warmPool
	contain containment
	hide    []string // what each run's mount namespace hides (hiddenPaths), under the namespaces containments
	scratch *scratch

	tempMu   sync.Mutex  // temp.go
	active   map[int]int // per script uid (-1: the worker's), runs whose processes may be alive
	tempDirs []string    // sharedTempDirs; tests point it elsewhere

	loopLag  lagMeter      // lag.go: the shared runners' event-loop lag, for admission control
	blocking *memoryBudget // budget.go: the memory of blocking runs' processes
	// starts bounds the one-call-at-a-time runners starting at once (warm.go, takeOrStart).
	starts chan struct{}
}

// New checks cfg, makes cfg.WorkDir private (see the privatedir package; an existing folder another user
// owns or can write to is refused), creates this process's scratch folder inside it (removing those of
// processes that are gone) and resolves the interpreter by asking it for sys.executable.
func New(cfg Config) (*Runner, error) {
	cfg = cfg.withDefaults()
	var errs []error
	if cfg.WorkDir == "" {
		errs = append(errs, errors.New("runner: WorkDir is required"))
	}
	if cfg.MaxResultBytes < 0 {
		errs = append(errs, fmt.Errorf("runner: MaxResultBytes must not be negative, got %d", cfg.MaxResultBytes))
	}
	if cfg.MaxOutputBytes < 0 {
		errs = append(errs, fmt.Errorf("runner: MaxOutputBytes must not be negative, got %d", cfg.MaxOutputBytes))
	}
	if cfg.MemoryLimitBytes < 0 {
		errs = append(errs, fmt.Errorf("runner: MemoryLimitBytes must not be negative, got %d", cfg.MemoryLimitBytes))
	}
	if cfg.KillGrace < 0 {
		errs = append(errs, fmt.Errorf("runner: KillGrace must not be negative, got %s", cfg.KillGrace))
	}
	if cfg.RunAs != nil && cfg.UIDRange != nil {
		errs = append(errs, errors.New("runner: RunAs and UIDRange exclude each other"))
	}
	if cfg.UIDRange != nil && (cfg.UIDRange.First == 0 || cfg.UIDRange.Count == 0) {
		errs = append(errs, fmt.Errorf("runner: UIDRange %+v is empty or includes root", *cfg.UIDRange))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	workDir, err := filepath.Abs(cfg.WorkDir)
	if err != nil {
		return nil, fmt.Errorf("runner: work dir: %w", err)
	}
	cfg.WorkDir = workDir

	python, err := resolvePython(cfg.Python)
	if err != nil {
		return nil, err
	}
	probeRunner := &Runner{cfg: cfg}
	home, _ := os.UserHomeDir()
	hide := hiddenPaths(home, workDir, cfg.HidePaths)
	contain, err := chooseContainment(cfg, python, probeRunner.credFor(Job{ScriptName: "probe"}), hide)
	if err != nil {
		return nil, err
	}
	if !contain.jail {
		hide = nil
	}
	if !contain.pidns {
		if err := enableSweeping(cfg.Logger); err != nil {
			cfg.Logger.Warn("processes that escape a script's session are not swept", "error", err)
		}
	}
	mode := fs.FileMode(0o700)
	if cfg.RunAs != nil || cfg.UIDRange != nil {
		mode = 0o711 // the scripts' user must reach its run folders, which are its own (0700) inside
	}
	scratch, err := newScratch(workDir, mode, cfg.Logger)
	if err != nil {
		return nil, err
	}
	if !contain.nproc && cfg.MaxProcesses > 0 {
		cfg.Logger.Warn("scripts run as root: the process limit (SCRIPT_MAX_PROCESSES) cannot be enforced; run scripts as other users (SCRIPT_UID_RANGE or SCRIPT_RUN_AS)")
	}
	switch {
	case contain.fallback != "" && os.Geteuid() == 0:
		cfg.Logger.Warn("scripts run without network and mount namespaces: their own sockets reach what the worker's network reaches, and /proc, /tmp and /dev/shm are the host's",
			"containment", contain.mode, "reason", contain.fallback)
	case contain.fallback != "" && cfg.RunAs == nil && cfg.UIDRange == nil:
		cfg.Logger.Warn("scripts run without user, network and mount namespaces (making them failed, see reason; Docker's default seccomp profile, for one, refuses user namespaces): they run as the worker's user, can signal it and read its files, their own sockets reach what the worker's network reaches, and /proc, /tmp and /dev/shm are the host's",
			"containment", contain.mode, "reason", contain.fallback)
	}
	if contain.jail && cfg.ProxyURL != "" && cfg.ServeProxy == nil {
		cfg.Logger.Warn("scripts run in network namespaces but the egress proxy is not served into them: they have no network at all")
	}
	users := "the worker's"
	switch {
	case cfg.UIDRange != nil:
		users = "one per script from " + cfg.UIDRange.String()
	case cfg.RunAs != nil:
		users = fmt.Sprintf("%d:%d", cfg.RunAs.UID, cfg.RunAs.GID)
	}
	if forkSupported && !cfg.Warm.NoFork {
		if err := probeFork(); err != nil {
			cfg.Logger.Warn("warm runners start afresh, each an interpreter and the script's import: forking them from a template needs pidfds and SO_PASSCRED (Linux 5.3)", "error", err)
			cfg.Warm.NoFork = true
		}
	}
	cfg.Logger.Info("script containment", "containment", contain.mode, "pid_namespace", contain.pidns, "script_users", users,
		"run_as", cfg.RunAs != nil, "process_limit", contain.nproc, "hidden", hide)
	r := &Runner{
		cfg:      cfg,
		python:   python,
		path:     filepath.Dir(python) + string(os.PathListSeparator) + "/usr/local/bin:/usr/bin:/bin",
		warm:     newWarmPool(cfg.Warm, cfg.Metrics),
		contain:  contain,
		hide:     hide,
		scratch:  scratch,
		tempDirs: sharedTempDirs,
		blocking: newMemoryBudget(cfg.MemoryBudgetBytes),
		starts:   make(chan struct{}, max(2, runtime.NumCPU())),
	}
	r.warm.runner = r // shared runners' successors start through it
	if r.blocking != nil {
		r.blocking.short = r.warm.evictIdle // a run waiting for memory stops idle runners
		r.blocking.report = cfg.Metrics.MemoryBudget
	}
	cfg.Metrics.MemoryBudget(cfg.MemoryBudgetBytes, 0, 0)
	return r, nil
}

// runnerMemory is what a blocking run on a runner started afresh is charged against the memory budget
// (RUNNER_MEMORY_MB).
func (r *Runner) runnerMemory() int64 { return r.cfg.RunnerMemoryBytes }

// PIDNamespace reports whether each run gets a PID namespace of its own (see doc.go).
func (r *Runner) PIDNamespace() bool { return r.contain.pidns }

// Containment reports the containment New settled on: ContainNamespaces, ContainUserns,
// ContainPIDNamespace or ContainSession.
func (r *Runner) Containment() string { return r.contain.mode }

// ProcessLimit reports whether MaxProcesses is enforced.
func (r *Runner) ProcessLimit() bool { return r.contain.nproc }

// processLimit is the RLIMIT_NPROC for a child of job starting now, or 0 for none.
//
// The kernel counts a process against the limit of its user in its own user namespace (since Linux 5.14):
// under ContainUserns that is the run's alone, which holds runner.py's init and the runner when the limit
// is set. Elsewhere it counts every process of the script's uid on the machine.
func (r *Runner) processLimit(job Job) int {
	if !r.contain.nproc {
		return 0
	}
	if r.contain.userns && nprocPerUserNamespace() {
		return 2 + r.cfg.MaxProcesses
	}
	uid := r.uidOf(job)
	if uid < 0 {
		uid = os.Getuid()
	}
	return tasksOf(uid) + r.cfg.MaxProcesses
}

// proxyPort is the egress proxy's port (0 without a proxy).
func (r *Runner) proxyPort() int {
	if r.cfg.ProxyURL == "" {
		return 0
	}
	u, err := url.Parse(r.cfg.ProxyURL)
	if err != nil {
		return 0
	}
	port, _ := strconv.Atoi(u.Port())
	return port
}

// newRunDir creates a run's scratch folder, owned by the job's script user.
// Each successful call is a run that started (runStarted): r.sweep, after its processes are gone, ends it.
func (r *Runner) newRunDir(prefix string, job Job) (string, error) {
	dir, err := r.scratch.newDir(prefix)
	if err == nil {
		r.runStarted(r.uidOf(job))
	}
	cred := r.credFor(job)
	if err != nil || cred == nil {
		return dir, err
	}
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		_ = os.RemoveAll(dir)
		r.runEnded(r.cfg.Logger, int(cred.Uid))
		return "", err
	}
	return dir, nil
}

// resolvePython asks the interpreter where it lives and which version it is.
func resolvePython(python string) (string, error) {
	found, err := exec.LookPath(python)
	if err != nil {
		return "", fmt.Errorf("runner: find python %q: %w", python, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	// The probe runs with the worker's environment: a pyenv shim needs it to pick a version. It runs no
	// script code.
	cmd := exec.CommandContext(ctx, found, "-I", "-S", "-c", "import sys; print(sys.executable); print('%d %d' % sys.version_info[:2])")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("runner: ask %s for sys.executable: %w: %s", found, err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		return "", fmt.Errorf("runner: unexpected answer from %s: %q", found, out)
	}
	executable := strings.TrimSpace(lines[0])
	if !filepath.IsAbs(executable) {
		return "", fmt.Errorf("runner: %s reports sys.executable %q, not an absolute path", found, executable)
	}
	var major, minor int
	if _, err := fmt.Sscanf(lines[1], "%d %d", &major, &minor); err != nil {
		return "", fmt.Errorf("runner: unexpected version from %s: %q", found, lines[1])
	}
	if major != 3 || minor < 8 {
		return "", fmt.Errorf("runner: %s is Python %d.%d; scripts need Python 3.8 or later", executable, major, minor)
	}
	return executable, nil
}

// Python returns the absolute path of the interpreter that runs the scripts.
func (r *Runner) Python() string { return r.python }

// Run runs job once and waits for it.
//
// Whatever the script does (return, raise, time out, crash, return something that is not JSON) comes back
// as a Result and a nil error. The error is non-nil only when the platform could not do its part, or when
// ctx ended before the script finished; then it wraps ctx.Err() and the child's process group has been
// killed. Failures to create the scratch folder, the pipes or the process are marked transient
// (contract.Transiently): another attempt, possibly on another worker, may succeed.
func (r *Runner) Run(ctx context.Context, job Job) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("run script %q: %w", job.ScriptName, err)
	}
	params, err := encodeParameters(job.Parameters)
	if err != nil {
		return Result{}, fmt.Errorf("run script %q: %w", job.ScriptName, err)
	}
	if job.Timeout <= 0 {
		return Result{}, fmt.Errorf("run script %q: timeout must be positive, got %s", job.ScriptName, job.Timeout)
	}
	scriptDir, err := filepath.Abs(job.ScriptDir)
	if err != nil {
		return Result{}, fmt.Errorf("run script %q: script dir: %w", job.ScriptName, err)
	}
	log := r.cfg.Logger.With("request_id", job.RequestID, "script", job.ScriptName)
	job.ScriptDir = scriptDir
	python := r.python
	if job.Python != "" {
		python = job.Python
	}
	if job.Warm {
		return r.runWarm(ctx, job, python, params, log)
	}
	release, late, err := r.blocking.acquire(ctx, time.Now().Add(job.Timeout), time.Now(), r.runnerMemory())
	if err != nil {
		return Result{}, fmt.Errorf("run script %q: %w", job.ScriptName, err)
	}
	if late != nil {
		return *late, nil
	}
	defer release()

	runDir, err := r.newRunDir("run-", job)
	if err != nil {
		return Result{}, fmt.Errorf("run script %q: %w", job.ScriptName, contract.Transiently(err))
	}
	defer removeRunDir(ctx, log, runDir)

	uid := r.uidOf(job)
	p, err := newPipes()
	if err != nil {
		r.runEnded(log, uid)
		return Result{}, fmt.Errorf("run script %q: %w", job.ScriptName, contract.Transiently(err))
	}
	defer p.close()

	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	deadline := time.Now().Add(job.Timeout)
	runCtx, stopTimer := context.WithDeadlineCause(runCtx, deadline, errTimeout)
	defer stopTimer()
	request := append(encodeRequest(job, params, deadline), '\n')

	g := &group{}
	cmd, jl, err := r.command(runCtx, python, job, runDir, p, g, nil, nil)
	if err != nil {
		r.runEnded(log, uid)
		return Result{}, fmt.Errorf("run script %q: %w", job.ScriptName, contract.Transiently(err))
	}
	defer jl.close()

	// Pdeathsig fires when the thread that started the child exits, so that thread must outlive the child.
	runtime.LockOSThread()
	start := time.Now()
	if err := startChild(cmd); err != nil {
		runtime.UnlockOSThread()
		r.runEnded(log, uid)
		return Result{}, fmt.Errorf("run script %q: start %s: %w", job.ScriptName, python, contract.Transiently(err))
	}
	p.closeChildEnds()
	if jl != nil {
		if err := jl.start(r.cfg.ServeProxy); err != nil {
			g.exited(cmd.Process.Pid) // kills the helper's group
			_ = cmd.Wait()
			runtime.UnlockOSThread()
			forgetChild(cmd.Process.Pid)
			r.runEnded(log, uid)
			return Result{}, fmt.Errorf("run script %q: %w", job.ScriptName, contract.Transiently(err))
		}
	}

	out := newOutput(log, r.cfg.MaxOutputBytes)
	var (
		wg       sync.WaitGroup
		doc      []byte
		overflow bool
	)
	wg.Go(func() { writeRequest(p.stdinW, request) })
	wg.Go(func() { out.consume(ctx, "stdout", p.stdoutR) })
	wg.Go(func() { out.consume(ctx, "stderr", p.stderrR) })
	wg.Go(func() {
		doc, overflow = readResultDoc(p.resultR, r.resultLimit(job)+resultEnvelopeBytes)
		if overflow {
			stopRun(errResultTooLarge)
		}
	})

	// Kill the group the moment the child exits, before reaping it, so no grandchild outlives the run.
	exited := waitExited(cmd.Process.Pid)
	if exited {
		g.exited(cmd.Process.Pid)
	}
	_ = cmd.Wait() // the outcome is read from ProcessState; a non-zero exit is not an error here
	duration := time.Since(start)
	if !exited {
		g.exited(cmd.Process.Pid) // best effort where waitid(WNOWAIT) is unavailable
	}
	runtime.UnlockOSThread()
	forgetChild(cmd.Process.Pid)
	r.sweep(log, cmd.Process.Pid, uid)

	// Give the pipes KillGrace to reach EOF: longer only if something escaped the group and holds them.
	p.setDeadline(time.Now().Add(r.cfg.KillGrace))
	wg.Wait()
	out.finish(ctx)

	res := Result{Duration: duration, OutputTail: out.tail()}
	switch cause := g.cause(); {
	case cause == nil:
		// The child exited on its own: read what it left.
	case errors.Is(cause, errTimeout):
		return failure(res, contract.StatusTimeout, contract.CodeScriptTimeout,
			fmt.Sprintf("script did not finish within %s and was stopped", job.Timeout)), nil
	case errors.Is(cause, errResultTooLarge):
		return r.tooLarge(res, job), nil
	default: // ctx ended first
		if err = ctx.Err(); err == nil {
			err = cause
		}
		return res, fmt.Errorf("run script %q: stopped after %s: %w", job.ScriptName, duration.Round(time.Millisecond), err)
	}
	if overflow { // written by a process that outlived the child
		return r.tooLarge(res, job), nil
	}
	return r.interpret(res, doc, cmd.ProcessState, job)
}

// interpret turns the result document, or its absence, and the child's exit into a Result.
func (r *Runner) interpret(res Result, doc []byte, ps *os.ProcessState, job Job) (Result, error) {
	if len(doc) == 0 {
		return failure(res, contract.StatusFailed, contract.CodeScriptCrashed, r.describeExit(ps)), nil
	}
	o, err := parseResult(doc, r.resultLimit(job))
	switch {
	case err != nil && (ps == nil || !ps.Success()):
		// Most likely killed while writing (the OOM killer, say); the exit says more than the torn document.
		return failure(res, contract.StatusFailed, contract.CodeScriptCrashed, r.describeExit(ps)), nil
	case err != nil:
		return failure(res, contract.StatusFailed, contract.CodeInvalidOutput,
			"the script's result channel held a malformed document: "+err.Error()), nil
	case o.Err != nil && o.Err.Code == contract.CodeInternal:
		return res, fmt.Errorf("run script %q: %s", job.ScriptName, o.Err.Message)
	}
	res.Status, res.Data, res.Err = o.Status, o.Data, o.Err
	if res.Status == contract.StatusTimeout {
		res.Err.Message = fmt.Sprintf("script did not finish within %s; its coroutine was cancelled", job.Timeout)
	}
	if res.Err != nil {
		res.Err.Detail = joinDetail(res.Err.Detail, res.OutputTail)
	}
	return res, nil
}

func (r *Runner) tooLarge(res Result, job Job) Result {
	return failure(res, contract.StatusFailed, contract.CodeOutputTooLarge,
		fmt.Sprintf("the result is larger than the limit of %d bytes", r.resultLimit(job)))
}

// failure sets res to a failure with the output tail as its detail.
func failure(res Result, status contract.Status, code contract.Code, message string) Result {
	res.Status = status
	res.Err = &contract.Error{Code: code, Message: message, Detail: res.OutputTail}
	return res
}

// command builds the child of a run, cold or warm (serve: the warm runner's request pipe, its fd 4; ctl: a
// template's control socket, its fd 5): the
// interpreter and its flags, runner.py and its arguments, the environment, the scratch folder, the pipes,
// the containment (SysProcAttr) and how it ends: cancelling ctx kills g's process group, with the cause
// context.Cause(ctx), and Wait leaves the pipes KillGrace to close.
//
// Under ContainNamespaces the child is the namespaces helper (package jailhelper), which executes the
// interpreter; the caller calls the jail's start once the child has started, and close at the end of the
// run.
func (r *Runner) command(ctx context.Context, python string, job Job, runDir string, p *pipes, g *group, serve, ctl *os.File) (*exec.Cmd, *jail, error) {
	args := append(r.interpreterArgs(job), "-c", runnerSource)
	files := []*os.File{p.resultW} // fd 3
	if serve != nil {
		args = append(args, "--serve")
		files = append(files, serve) // fd 4
		if ctl != nil {
			files = append(files, ctl) // fd 5: a template's control socket (fork.go)
		}
	}
	args = append(args, job.ScriptDir, strconv.FormatInt(r.memoryLimit(job), 10), strconv.Itoa(r.resultLimit(job)),
		strconv.Itoa(r.processLimit(job)))
	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Dir = runDir
	cmd.Env = r.env(job, runDir)
	cmd.Stdin = p.stdinR
	cmd.Stdout = p.stdoutW
	cmd.Stderr = p.stderrW
	cmd.ExtraFiles = files
	cmd.SysProcAttr = sysProcAttr(r.contain, r.credFor(job))
	cmd.WaitDelay = r.cfg.KillGrace
	cmd.Cancel = func() error { return g.cancel(cmd.Process.Pid, context.Cause(ctx)) }
	if !r.contain.jail {
		return cmd, nil, nil
	}
	if cmd.Err != nil {
		return nil, nil, cmd.Err
	}
	jl, err := r.newJail(cmd, job, runDir)
	if err != nil {
		return nil, nil, err
	}
	return cmd, jl, nil
}

// env is the child's whole environment: nothing of the worker's own gets through.
func (r *Runner) env(job Job, runDir string) []string {
	clean := func(s string) string { return strings.ReplaceAll(s, "\x00", "") }
	env := []string{
		"PATH=" + r.path,
		"HOME=" + runDir,
		"TMPDIR=" + runDir,
		"LANG=C.UTF-8",
		"PYTHONUNBUFFERED=1",
		"PYTHONDONTWRITEBYTECODE=1",
		"SCRAPER_REQUEST_ID=" + clean(job.RequestID),
		"SCRAPER_SCRIPT_NAME=" + clean(job.ScriptName),
	}
	if r.cfg.MaxFileBytes > 0 {
		env = append(env, "SCRAPER_MAX_FILE_BYTES="+strconv.FormatInt(r.cfg.MaxFileBytes, 10)) // runner.py takes it out
	}
	if p := clean(r.cfg.ProxyURL); p != "" {
		// The run names itself in the URL's user information, so the worker can tell the caller why the
		// proxy refused the run's requests (egress.RunProxyURL).
		// A warm runner serves many requests with one environment: it names only its script.
		run := job.RequestID
		if job.Warm {
			run = ""
		}
		if r.contain.jail {
			// In its network namespace the run reaches the proxy at 127.0.0.1 on the proxy's port, whatever
			// address the proxy listens on outside (jail_linux.go).
			if u, err := url.Parse(p); err == nil {
				u.Host = "127.0.0.1:" + u.Port()
				p = u.String()
			}
		}
		p = egress.RunProxyURL(p, clean(job.ScriptName), clean(run))
		// Both spellings: Python's urllib and requests read either; curl and Go read the lower-case http_proxy.
		// No no_proxy: loopback and private addresses must go through the proxy too, which refuses them.
		env = append(env, "http_proxy="+p, "https_proxy="+p, "HTTP_PROXY="+p, "HTTPS_PROXY="+p)
	}
	return env
}

// sweep ends what a finished run left in its session and what escaped it (session mode; doc.go), then
// what it left in the shared temporary folders (runEnded, temp.go).
func (r *Runner) sweep(log *slog.Logger, leader, uid int) {
	defer r.runEnded(log, uid)
	if r.contain.pidns {
		return // the kernel killed everything in the run's PID namespace with its init
	}
	if n := sweep(leader, sweepBound); n > 0 {
		log.Warn("killed processes the script left outside its process group", "processes", n)
	}
}

// interpreterArgs are the interpreter flags: isolated, unbuffered, no bytecode files, and, for the worker's
// own interpreter, no site module (see doc.go).
func (r *Runner) interpreterArgs(job Job) []string {
	if job.Python != "" {
		return []string{"-I", "-u", "-B"}
	}
	return []string{"-I", "-S", "-u", "-B"}
}

func (r *Runner) memoryLimit(job Job) int64 {
	if job.MemoryLimitBytes > 0 {
		return job.MemoryLimitBytes
	}
	return r.cfg.MemoryLimitBytes
}

// encodeParameters validates the script's parameters and returns them as one line of compact JSON; empty
// or null parameters are {}.
func encodeParameters(params json.RawMessage) ([]byte, error) {
	if err := contract.ValidateParameters(params); err != nil {
		return nil, err
	}
	trimmed := bytes.TrimSpace(params)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return []byte("{}"), nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, trimmed); err != nil { // one line, whatever the caller's formatting
		return nil, fmt.Errorf("parameters: %w", err)
	}
	return buf.Bytes(), nil
}

// encodeRequest builds the request document runner.py reads (on stdin for a cold run, as a frame for a warm
// one): {"request_id":…,"parameters":{…},"timeout_ms":…,"deadline_ms":…}. timeout_ms is the run's time
// budget (job.Timeout) and deadline_ms the Unix time in milliseconds at which the worker kills the run;
// runner.py cancels an async script's coroutine just before it (see "Time budget" in doc.go).
func encodeRequest(job Job, params []byte, deadline time.Time) []byte {
	id, _ := json.Marshal(job.RequestID) // a string always encodes
	buf := make([]byte, 0, len(params)+len(id)+96)
	buf = append(buf, `{"request_id":`...)
	buf = append(buf, id...)
	buf = append(buf, `,"parameters":`...)
	buf = append(buf, params...)
	buf = append(buf, `,"timeout_ms":`...)
	buf = strconv.AppendInt(buf, job.Timeout.Milliseconds(), 10)
	buf = append(buf, `,"deadline_ms":`...)
	buf = strconv.AppendInt(buf, deadline.UnixMilli(), 10)
	return append(buf, '}')
}

// writeRequest hands the request to the child and closes stdin. A child that dies first, or never reads,
// makes the write fail (EPIPE, or the deadline); either way the outcome is read from the child's exit.
func writeRequest(w *os.File, request []byte) {
	_, _ = w.Write(request)
	_ = w.Close()
}

// describeExit says how the child ended, for a crash message.
func (r *Runner) describeExit(ps *os.ProcessState) string {
	if ps == nil {
		return describeWait(0, false, false)
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	return describeWait(ws, ok, r.contain.pidns)
}

// describeWait says how a process ended from its wait status (known: the status is known at all; viaInit:
// it is the status of runner.py's init in a PID namespace, which reports its child's).
func describeWait(ws syscall.WaitStatus, known, viaInit bool) string {
	if !known {
		return "the script process ended without a result"
	}
	sig, ok := ws.Signal(), ws.Signaled()
	code := ws.ExitStatus()
	if !ok && viaInit && code > 128 && code <= 128+64 {
		// runner.py's init, which cannot die of a signal sent from its own namespace, reports the runner's
		// death by signal N as status 128+N, as shells do.
		sig, ok = syscall.Signal(code-128), true
	}
	if ok {
		msg := fmt.Sprintf("the script process was killed by signal %d (%s) before returning a result", int(sig), sig)
		if isKill(sig) {
			msg += "; possibly out of memory"
		}
		return msg
	}
	return fmt.Sprintf("the script process exited with status %d before returning a result", code)
}

// joinDetail appends the output tail to a failure's own detail.
func joinDetail(detail, tail string) string {
	switch {
	case tail == "":
		return detail
	case detail == "":
		return tail
	}
	return strings.TrimRight(detail, "\n") + "\n\n--- script output (tail) ---\n" + tail
}

// removeRunDir removes a run's scratch folder, making read-only folders the script left writable first.
// It removes the runner's scratch folder too when the runner has been shut down and this was its last run.
func removeRunDir(ctx context.Context, log *slog.Logger, dir string) {
	releaseRunDir(dir)
	if _, err := os.Lstat(dir); err == nil {
		log.WarnContext(ctx, "cannot remove the run's scratch folder", "dir", dir)
	}
}
