package runner

import (
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/scrapeplatform/platform/shared/config"
)

// Defaults applied by New to zero fields of Config.
const (
	DefaultPython         = "python3"
	DefaultMaxResultBytes = 400 * 1024
	DefaultMaxOutputBytes = 8 * 1024
	DefaultKillGrace      = 2 * time.Second
	// DefaultMaxFileBytes is the RLIMIT_FSIZE of a script (SCRIPT_MAX_FILE_MB's default, 1024 MiB).
	DefaultMaxFileBytes = 1024 << 20
	// DefaultWarmMaxRequests is WarmConfig.MaxRequests's default: requests one runner serves before it is
	// replaced. A leaking runner is bounded by its resident memory (MaxRSSBytes, checked after every call of
	// a one-call runner and in a shared runner's heartbeats), so the count only guards what memory does not
	// show (descriptors, threads); each replacement is an interpreter start and the script's import (tens to
	// hundreds of milliseconds of CPU), which 1,000 made about 0.05–0.1 ms of every trivial request here.
	DefaultWarmMaxRequests = 10_000
	// DefaultWarmMaxCalls is WarmConfig.MaxCalls's default: calls one shared runner serves at once.
	DefaultWarmMaxCalls = 256
	// DefaultWarmMaxThreads is WARM_RUNNER_MAX_THREADS's default: calls one threads runner serves at once.
	DefaultWarmMaxThreads = 64
	// DefaultWarmLoopLagLimit is WarmConfig.LoopLagLimit's default.
	DefaultWarmLoopLagLimit = 2 * time.Second
	// DefaultWarmMaxRSSBytes is WarmConfig.MaxRSSBytes's default.
	DefaultWarmMaxRSSBytes = 512 << 20
	// DefaultJailTmpfsBytes is what a namespaced run's /tmp, /var/tmp and /dev/shm may hold together (a
	// quarter each... see tmpfsSizes) when it has no memory limit.
	DefaultJailTmpfsBytes = 1 << 30
	// DefaultHidePaths is SCRIPT_HIDE_PATHS's default: where Docker and Kubernetes mount secrets.
	DefaultHidePaths = "/run/secrets"
)

// Config configures a Runner. Zero fields take the defaults above (withDefaults); WorkDir is required.
type Config struct {
	// Python is the interpreter (a name on PATH or a path). New resolves it once to the absolute path the
	// interpreter reports as sys.executable, so pyenv shims cost nothing per run.
	Python string
	// WorkDir is the parent folder of the per-run scratch folders (HOME, TMPDIR and cwd of the child). It is
	// created if missing.
	WorkDir string
	// MaxResultBytes caps the script's result as encoded JSON; larger results fail with CodeOutputTooLarge.
	MaxResultBytes int
	// MaxOutputBytes is how much of the end of the script's combined stdout and stderr is kept for
	// Result.OutputTail and error details.
	MaxOutputBytes int
	// MemoryLimitBytes is the RLIMIT_AS set in the child before the script is imported; 0 means none.
	MemoryLimitBytes int64
	// MaxFileBytes is the RLIMIT_FSIZE set in the child before the script is imported: the largest file it
	// may write (in its run folder, /tmp, /dev/shm alike); a write past it fails with "File too large". 0
	// means DefaultMaxFileBytes, negative no limit.
	MaxFileBytes int64
	// KillGrace bounds how long Run waits for the child's pipes once the process group has been killed
	// (cmd.WaitDelay).
	KillGrace time.Duration
	// Logger receives the script's output lines and the runner's own warnings. Nil discards them.
	Logger *slog.Logger
	// Warm bounds the pool of warm runners used by jobs with Warm set.
	Warm WarmConfig
	// Containment is ContainAuto (the default), ContainNamespaces, ContainUserns, ContainPIDNamespace or
	// ContainSession: how a run's processes are kept together and ended (doc.go, "Containment").
	Containment string
	// HidePaths are folders (an empty read-only tmpfs) and files or sockets (/dev/null) that each run's mount
	// namespace hides, under ContainNamespaces and ContainUserns, besides the worker's HOME and WorkDir
	// (see hiddenPaths); what a run needs below them is bound back. Absolute; those missing at New are
	// ignored.
	HidePaths []string
	// UIDRange, when set, runs each script as a uid of its own from this range (see UIDRange; exclusive
	// with RunAs). Like RunAs it needs a root worker, and the scripts, the interpreter and the environments
	// must be readable by any user.
	UIDRange *UIDRange
	// RunAs, when set, runs scripts as this user and group. The worker needs root (or CAP_SETUID and
	// CAP_SETGID), and the scripts, the interpreter and the environments must be readable by that user.
	RunAs *Credential
	// MaxProcesses bounds the processes and threads a script may start, as RLIMIT_NPROC over what its user
	// already runs; 0 means DefaultMaxProcesses, negative no limit. The kernel does not apply it to root, so
	// scripts that run as root (a root worker without RunAs) are not limited.
	MaxProcesses int
	// MemoryBudgetBytes bounds the memory of the blocking (def scrape) runs in progress at once, each a
	// Python process of its own (WORKER_MEMORY_BUDGET_MB; budget.go). 0 means no bound. Async scripts share
	// runners and are not counted.
	MemoryBudgetBytes int64
	// RunnerMemoryBytes is what a blocking run is charged against MemoryBudgetBytes when its runner starts
	// afresh, or before its script's forked runners have been measured (RUNNER_MEMORY_MB; 0 means
	// DefaultRunnerMemoryBytes).
	RunnerMemoryBytes int64
	// ProxyURL, when set, is the egress proxy scripts get as http_proxy, https_proxy and their upper-case
	// forms (see the egress package).
	ProxyURL string
	// ServeProxy, under ContainNamespaces, is given each run's listener inside its network namespace
	// (127.0.0.1 at ProxyURL's port there), to serve the egress proxy on it (egress.Proxy.Serve) until the
	// runner closes it at the end of the run. Nil leaves namespaced runs without any way out.
	ServeProxy func(net.Listener)
	// ProtectSecrets asks the worker's main to call protect.Process (shared/protect) at start (WORKER_PROTECT_SECRETS). It
	// acts on the whole worker process, so New does not apply it.
	ProtectSecrets bool
	// Metrics records the warm pool's work; nil records nothing.
	Metrics Metrics
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.Python == "" {
		c.Python = DefaultPython
	}
	if c.MaxResultBytes == 0 {
		c.MaxResultBytes = DefaultMaxResultBytes
	}
	if c.MaxOutputBytes == 0 {
		c.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if c.MaxFileBytes == 0 {
		c.MaxFileBytes = DefaultMaxFileBytes
	}
	if c.KillGrace == 0 {
		c.KillGrace = DefaultKillGrace
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Containment == "" {
		c.Containment = ContainAuto
	}
	if c.MaxProcesses == 0 {
		c.MaxProcesses = DefaultMaxProcesses
	}
	if c.Metrics == nil {
		c.Metrics = nopMetrics{}
	}
	if c.RunnerMemoryBytes <= 0 {
		c.RunnerMemoryBytes = DefaultRunnerMemoryBytes
	}
	c.Warm = c.Warm.withDefaults()
	return c
}

// LoadConfig reads the runner's settings from the environment (worker/README.md, "Configuration"):
// WORKER_PYTHON, SCRIPT_MAX_RESULT_BYTES, SCRIPT_MEMORY_LIMIT_MB, SCRIPT_MAX_FILE_MB, WARM_RUNNER_MAX_REQUESTS,
// WARM_RUNNER_IDLE_TIMEOUT, WARM_RUNNER_MAX_IDLE, WARM_RUNNER_MAX_CALLS, WARM_RUNNER_MAX_THREADS, WARM_LOOP_LAG_LIMIT,
// WARM_RUNNER_MAX_RSS_MB, WARM_RUNNER_FORK, SCRIPT_CONTAINMENT, SCRIPT_HIDE_PATHS, SCRIPT_MAX_PROCESSES, SCRIPT_RUN_AS,
// SCRIPT_UID_RANGE and WORKER_PROTECT_SECRETS. e collects every problem. workDir is the worker's
// WORKER_WORK_DIR (the parent of the run folders); concurrency is WORKER_CONCURRENCY, of which
// WARM_RUNNER_MAX_IDLE defaults to twice.
// Logger, ProxyURL and Metrics are the caller's to set.
func LoadConfig(e *config.Env, workDir string, concurrency int) Config {
	c := Config{
		Python:           e.String("WORKER_PYTHON", DefaultPython),
		WorkDir:          workDir,
		MaxResultBytes:   e.Int("SCRIPT_MAX_RESULT_BYTES", DefaultMaxResultBytes, 1024, 450*1024),
		MemoryLimitBytes: int64(e.Int("SCRIPT_MEMORY_LIMIT_MB", 1024, 0, 1<<20)) << 20,
		MaxFileBytes:     int64(e.Int("SCRIPT_MAX_FILE_MB", DefaultMaxFileBytes>>20, 0, 1<<24)) << 20,
		Warm: WarmConfig{
			MaxRequests: e.Int("WARM_RUNNER_MAX_REQUESTS", DefaultWarmMaxRequests, 1, 1_000_000),
			IdleTimeout: e.Duration("WARM_RUNNER_IDLE_TIMEOUT", 60*time.Second, time.Second, 24*time.Hour),
			MaxIdle:     e.Int("WARM_RUNNER_MAX_IDLE", 2*concurrency, 0, 4096),
			MaxCalls:    e.Int("WARM_RUNNER_MAX_CALLS", DefaultWarmMaxCalls, 1, 100_000),
			MaxThreads:  e.Int("WARM_RUNNER_MAX_THREADS", DefaultWarmMaxThreads, 1, 1024),
			LoopLagLimit: e.Duration("WARM_LOOP_LAG_LIMIT", DefaultWarmLoopLagLimit, 10*time.Millisecond,
				10*time.Minute),
			MaxRSSBytes: int64(e.Int("WARM_RUNNER_MAX_RSS_MB", DefaultWarmMaxRSSBytes>>20, 0, 1<<20)) << 20,
			NoFork:      !e.Bool("WARM_RUNNER_FORK", true),
		},
		Containment: e.OneOf("SCRIPT_CONTAINMENT", ContainAuto, ContainAuto, ContainNamespaces, ContainUserns,
			ContainPIDNamespace, ContainSession),
		MaxProcesses:   e.Int("SCRIPT_MAX_PROCESSES", DefaultMaxProcesses, 0, 1<<22),
		ProtectSecrets: e.Bool("WORKER_PROTECT_SECRETS", true),
	}
	c.MemoryBudgetBytes = int64(e.Int("WORKER_MEMORY_BUDGET_MB", int(max(DefaultMemoryBudget()>>20, 64)), 0, 1<<24)) << 20
	c.RunnerMemoryBytes = int64(e.Int("RUNNER_MEMORY_MB", DefaultRunnerMemoryBytes>>20, 1, 1<<16)) << 20
	if c.MaxProcesses == 0 {
		c.MaxProcesses = -1 // SCRIPT_MAX_PROCESSES=0: no limit
	}
	if c.MaxFileBytes == 0 {
		c.MaxFileBytes = -1 // SCRIPT_MAX_FILE_MB=0: no limit
	}
	if c.Warm.MaxRSSBytes == 0 {
		c.Warm.MaxRSSBytes = -1 // WARM_RUNNER_MAX_RSS_MB=0: no bound
	}
	for _, p := range strings.Split(e.String("SCRIPT_HIDE_PATHS", DefaultHidePaths), ",") {
		switch p = strings.TrimSpace(p); {
		case p == "" || p == "none":
		case !filepath.IsAbs(p) || filepath.Clean(p) == "/":
			e.Fail("SCRIPT_HIDE_PATHS must list absolute paths other than /, separated by commas, got %q", p)
		default:
			c.HidePaths = append(c.HidePaths, filepath.Clean(p))
		}
	}
	if v := strings.TrimSpace(e.String("SCRIPT_RUN_AS", "")); v != "" {
		uid, gid, ok := parseUser(v)
		switch {
		case !ok:
			e.Fail("SCRIPT_RUN_AS must be a numeric uid or uid:gid (e.g. 10002:10002), got %q", v)
		case uid == 0:
			e.Fail("SCRIPT_RUN_AS must not be root (uid 0)")
		default:
			c.RunAs = &Credential{UID: uid, GID: gid}
		}
	}
	if v := strings.TrimSpace(e.String("SCRIPT_UID_RANGE", "")); v != "" {
		u, err := parseUIDRange(v)
		switch {
		case err != nil:
			e.Fail("%v", err)
		case c.RunAs != nil:
			e.Fail("SCRIPT_UID_RANGE and SCRIPT_RUN_AS exclude each other: set one")
		default:
			c.UIDRange = &u
		}
	}
	return c
}

// parseUser parses SCRIPT_RUN_AS: "uid" or "uid:gid", numeric; gid defaults to uid.
func parseUser(v string) (uid, gid uint32, ok bool) {
	u, g, hasGroup := strings.Cut(v, ":")
	un, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		return 0, 0, false
	}
	gn := un
	if hasGroup {
		if gn, err = strconv.ParseUint(g, 10, 32); err != nil {
			return 0, 0, false
		}
	}
	return uint32(un), uint32(gn), true
}
