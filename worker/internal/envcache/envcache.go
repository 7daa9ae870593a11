package envcache

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/scrapeplatform/platform/shared/config"
	"github.com/scrapeplatform/platform/worker/internal/privatedir"
)

// marker is written last into a finished environment.
const marker = ".scrape-env.json"

// PipVariables are the worker environment variables handed to pip (and nothing else of the worker's).
var PipVariables = []string{
	"PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX", "PIP_TRUSTED_HOST",
	"PIP_CERT", "PIP_CLIENT_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES", "PIP_PROXY", "PIP_ONLY_BINARY",
	"PIP_PREFER_BINARY", "PIP_CONSTRAINT", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
}

// ErrInstallFailed reports requirements that could not be installed; errors.As gives the *InstallError.
var ErrInstallFailed = errors.New("dependency install failed")

// InstallError carries the tail of pip's output.
type InstallError struct {
	Reason string
	Output string
}

func (e *InstallError) Error() string { return e.Reason }
func (e *InstallError) Unwrap() error { return ErrInstallFailed }

// Config configures a Cache.
type Config struct {
	// Root holds the environments; created if missing.
	Root string
	// Python is the worker's interpreter (absolute path); its pip installs the packages.
	Python string
	// MaxBytes bounds the cache's size on disk; 0 means no bound.
	MaxBytes int64
	// BuildTimeout bounds one build (default 10 min).
	BuildTimeout time.Duration
	// FailureTTL is how long a failed install is remembered (default 1 min).
	FailureTTL time.Duration
	// Getenv reads the worker's PIP_* settings (default os.Getenv).
	Getenv func(string) string
	// Logger receives the builds' progress and problems; nil discards them.
	Logger *slog.Logger
	// Metrics records builds and hits; nil records nothing.
	Metrics Metrics
}

// Defaults of Config's zero fields.
const (
	DefaultBuildTimeout = 10 * time.Minute
	DefaultFailureTTL   = time.Minute
)

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.BuildTimeout <= 0 {
		c.BuildTimeout = DefaultBuildTimeout
	}
	if c.FailureTTL <= 0 {
		c.FailureTTL = DefaultFailureTTL
	}
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = nopMetrics{}
	}
	return c
}

// LoadConfig reads the cache's settings from the environment (worker/README.md, "Configuration"):
// ENV_CACHE_DIR (default workDir/envs, workDir being the worker's WORKER_WORK_DIR), ENV_CACHE_MAX_MB and
// ENV_BUILD_TIMEOUT. e collects every problem. Python, Logger and Metrics are the caller's to set.
func LoadConfig(e *config.Env, workDir string) Config {
	return Config{
		Root:         e.String("ENV_CACHE_DIR", filepath.Join(workDir, "envs")),
		MaxBytes:     int64(e.Int("ENV_CACHE_MAX_MB", 5120, 0, 1<<22)) << 20,
		BuildTimeout: e.Duration("ENV_BUILD_TIMEOUT", DefaultBuildTimeout, 10*time.Second, 2*time.Hour),
	}
}

// Env is a ready environment.
type Env struct {
	Key string
	// Dir is the venv folder; Python is its interpreter.
	Dir    string
	Python string
}

// Lease is an environment in use; it is not evicted until released.
type Lease struct {
	Env
	c    *Cache
	once sync.Once
}

// Release gives the environment back to the cache.
func (l *Lease) Release() {
	l.once.Do(func() {
		if l.c != nil { // a Lease made outside the cache (a test's) holds nothing
			l.c.release(l.Key)
		}
	})
}

// Cache builds and keeps environments.
type Cache struct {
	cfg      Config
	log      *slog.Logger
	identity string // python version + platform, part of every key

	// stop is the parent of every build; Shutdown cancels it.
	stop       context.Context
	cancelStop context.CancelFunc

	mu       sync.Mutex
	building map[string]*build
	failed   map[string]failure
	leases   map[string]int
	verified map[string]bool
	bg       sync.WaitGroup // builds and evictions in flight
}

type build struct {
	done chan struct{}
	err  error
}

type failure struct {
	err error
	at  time.Time
}

// New prepares the cache: creates Root, removes leftovers of interrupted builds, and asks the interpreter
// for its version and platform.
func New(cfg Config) (*Cache, error) {
	cfg = cfg.withDefaults()
	if cfg.Root == "" || cfg.Python == "" {
		return nil, errors.New("envcache: Root and Python are required")
	}
	root, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, err
	}
	// Private to the worker: an existing folder another user owns or may write to is refused (what is in it
	// would run as the worker). 0711: scripts run as another user (SCRIPT_RUN_AS) reach their environment's
	// interpreter by its path but cannot list or change the cache.
	if err := privatedir.Ensure(root, 0o711); err != nil {
		return nil, fmt.Errorf("envcache: %w", err)
	}
	cfg.Root = root
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cfg.Python, "-I", "-S", "-c",
		"import sys, sysconfig; print('%s %s %s' % (sys.implementation.name, '.'.join(map(str, sys.version_info[:3])), sysconfig.get_platform()))").Output()
	if err != nil {
		return nil, fmt.Errorf("envcache: ask %s for its version: %w", cfg.Python, err)
	}
	c := &Cache{
		cfg: cfg, log: cfg.Logger, identity: strings.TrimSpace(string(out)),
		building: map[string]*build{}, failed: map[string]failure{}, leases: map[string]int{}, verified: map[string]bool{},
	}
	c.stop, c.cancelStop = context.WithCancel(context.Background())
	c.removeStaleBuilds()
	return c, nil
}

// Wait blocks until builds and evictions in flight have finished (for tests; shutdown uses Shutdown).
func (c *Cache) Wait() { c.bg.Wait() }

// Shutdown interrupts the builds in flight (their pip is killed, and they fail) and waits until they and
// any eviction have ended, or until ctx ends (it then returns ctx's error). Builds started afterwards fail
// at once. Ready environments stay on disk for the next worker.
func (c *Cache) Shutdown(ctx context.Context) error {
	c.cancelStop()
	done := make(chan struct{})
	go func() { c.bg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("envcache shutdown: %w", ctx.Err())
	}
}

// Key returns the cache key of a requirements file for this cache's interpreter.
func (c *Cache) Key(requirements []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "envcache/v1\n%s\n", c.identity)
	h.Write(normalize(requirements))
	return hex.EncodeToString(h.Sum(nil))[:24]
}

// CheckRequirements refuses what a script's requirements.txt must not do: pip options on their own line
// (--index-url, --extra-index-url, --find-links, --trusted-host, -e, -r, -c, ...) would let a script bundle
// point the worker's pip at another index, at local paths, or at other files, overriding what the operator
// set through PIP_* variables. Per-requirement options after a requirement (--hash=...) stay allowed.
func CheckRequirements(req []byte) error {
	if len(req) > 256<<10 {
		return fmt.Errorf("requirements.txt is larger than 256 KiB")
	}
	for i, line := range strings.Split(strings.ReplaceAll(string(req), "\r\n", "\n"), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if strings.HasPrefix(t, "-") {
			return fmt.Errorf("requirements.txt line %d: pip options (%q) are not allowed; index and proxy settings come from the worker's PIP_* settings", i+1, strings.Fields(t)[0])
		}
		if strings.HasPrefix(t, ".") || strings.HasPrefix(t, "/") || strings.HasPrefix(t, "file:") {
			return fmt.Errorf("requirements.txt line %d: local paths are not allowed", i+1)
		}
	}
	return nil
}

// normalize makes cosmetic differences (line endings, trailing spaces, blank lines) not change the key.
func normalize(req []byte) []byte {
	var out bytes.Buffer
	for _, line := range strings.Split(strings.ReplaceAll(string(req), "\r\n", "\n"), "\n") {
		line = strings.TrimRight(line, " \t")
		if strings.TrimSpace(line) == "" {
			continue
		}
		out.WriteString(line)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// Get returns a lease on the environment for requirementsFile, building it first if needed. It waits for
// the build at most as long as ctx allows; the build itself goes on for later callers.
func (c *Cache) Get(ctx context.Context, requirementsFile string) (*Lease, error) {
	req, err := os.ReadFile(requirementsFile)
	if err != nil {
		return nil, fmt.Errorf("read requirements: %w", err)
	}
	if err := CheckRequirements(req); err != nil {
		return nil, &InstallError{Reason: err.Error()}
	}
	key := c.Key(req)
	for attempt := 0; ; attempt++ {
		env, err := c.ready(ctx, key)
		if err != nil {
			return nil, err
		}
		if env != nil {
			return c.lease(*env), nil
		}
		if attempt > 0 {
			return nil, fmt.Errorf("environment %s vanished right after it was built", key)
		}
		if err := c.await(ctx, key, requirementsFile); err != nil {
			return nil, err
		}
	}
}

// ready returns the environment when it exists and works, nil when it must be built.
func (c *Cache) ready(ctx context.Context, key string) (*Env, error) {
	c.mu.Lock()
	if f, ok := c.failed[key]; ok && time.Since(f.at) < c.cfg.FailureTTL {
		c.mu.Unlock()
		return nil, f.err
	}
	_, busy := c.building[key]
	verified := c.verified[key]
	c.mu.Unlock()
	if busy {
		return nil, nil
	}
	env := c.envAt(key)
	if _, err := os.Stat(filepath.Join(env.Dir, marker)); err != nil {
		return nil, nil
	}
	if !verified {
		if err := verify(ctx, env); err != nil {
			c.log.Warn("environment is broken; rebuilding it", "env", key, "error", err)
			c.remove(key)
			return nil, nil
		}
		c.mu.Lock()
		c.verified[key] = true
		c.mu.Unlock()
	}
	c.cfg.Metrics.EnvHit()
	return &env, nil
}

func (c *Cache) envAt(key string) Env {
	dir := filepath.Join(c.cfg.Root, key)
	return Env{Key: key, Dir: dir, Python: filepath.Join(dir, "bin", "python")}
}

// verify checks that the environment's interpreter starts. It runs it only once the whole environment is
// known to be the worker's own: every file and folder in it owned by the worker's user and writable by
// nobody else, and bin/python resolving to an interpreter owned by root or the worker that only its owner
// may change. Anything else (say, an environment another user planted) is refused unrun, and rebuilt.
func verify(ctx context.Context, env Env) error {
	if err := privatedir.CheckTree(env.Dir); err != nil {
		return fmt.Errorf("not run: %w", err)
	}
	if err := privatedir.CheckExecutable(env.Python); err != nil {
		return fmt.Errorf("not run: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, env.Python, "-I", "-c", "import sys").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", env.Python, err, tail(out, 500))
	}
	return nil
}

// await starts or joins the build of key and waits for it within ctx.
func (c *Cache) await(ctx context.Context, key, requirementsFile string) error {
	c.mu.Lock()
	b, ok := c.building[key]
	if !ok {
		b = &build{done: make(chan struct{})}
		c.building[key] = b
		c.bg.Add(1)
		go func() { defer c.bg.Done(); c.run(key, requirementsFile, b) }()
	}
	c.mu.Unlock()
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return fmt.Errorf("the script's dependencies are still being installed: %w", ctx.Err())
	}
}

func (c *Cache) run(key, requirementsFile string, b *build) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(c.stop, c.cfg.BuildTimeout)
	defer cancel()
	log := c.log.With("env", key)
	log.Info("building script environment", "requirements", requirementsFile)
	err := c.build(ctx, key, requirementsFile)
	outcome := "ok"
	c.mu.Lock()
	delete(c.building, key)
	if err != nil {
		outcome = "failed"
		c.failed[key] = failure{err: err, at: time.Now()}
	} else {
		delete(c.failed, key)
		c.verified[key] = true
	}
	c.mu.Unlock()
	c.cfg.Metrics.EnvBuilt(outcome, time.Since(start))
	b.err = err
	close(b.done)
	if err != nil {
		log.Error("script environment build failed", "error", err, "duration_ms", time.Since(start).Milliseconds())
	} else {
		log.Info("script environment ready", "duration_ms", time.Since(start).Milliseconds())
		c.evict(key)
	}
}

// build creates the environment in a temporary folder and renames it into place.
func (c *Cache) build(ctx context.Context, key, requirementsFile string) error {
	final := c.envAt(key)
	tmp := filepath.Join(c.cfg.Root, fmt.Sprintf(".build-%s-%d-%s", key, os.Getpid(), randomSuffix()))
	defer os.RemoveAll(tmp)
	home := tmp + ".home"
	defer os.RemoveAll(home)
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	env := c.pipEnv(home)

	if out, err := c.command(ctx, env, c.cfg.Python, "-I", "-m", "venv", "--without-pip", tmp); err != nil {
		return &InstallError{Reason: "could not create the virtual environment: " + err.Error(), Output: tail(out, 4000)}
	}
	out, err := c.command(ctx, env, c.cfg.Python, "-I", "-m", "pip", "--python", filepath.Join(tmp, "bin", "python"),
		"install", "--no-input", "--disable-pip-version-check", "--no-warn-script-location", "--progress-bar", "off",
		"-r", requirementsFile)
	if err != nil {
		reason := "pip could not install the requirements"
		if ctx.Err() != nil {
			reason = fmt.Sprintf("pip did not finish within %s", c.cfg.BuildTimeout)
		}
		return &InstallError{Reason: reason + ": " + lastLine(out), Output: tail(out, 4000)}
	}
	if err := rewriteShebangs(filepath.Join(tmp, "bin"), tmp, final.Dir); err != nil {
		return fmt.Errorf("relocate environment: %w", err)
	}
	if err := closeModes(tmp); err != nil {
		return fmt.Errorf("close the environment's file modes: %w", err)
	}
	meta, _ := json.Marshal(map[string]any{"key": key, "python": c.identity, "requirements": requirementsFile, "built_at": time.Now().UTC()})
	if err := os.WriteFile(filepath.Join(tmp, marker), meta, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, final.Dir); err != nil {
		if _, statErr := os.Stat(filepath.Join(final.Dir, marker)); statErr == nil {
			return nil // another worker sharing the cache finished the same environment first
		}
		if errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY) {
			// A broken leftover under the key: move it aside, then retry once.
			c.remove(key)
			err = os.Rename(tmp, final.Dir)
		}
		if err != nil {
			return fmt.Errorf("move environment into place: %w", err)
		}
	}
	return nil
}

func (c *Cache) command(ctx context.Context, env []string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Dir = c.cfg.Root
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd.CombinedOutput()
}

// pipEnv is pip's environment: the pip settings of the worker and nothing else of it.
func (c *Cache) pipEnv(home string) []string {
	env := []string{"PATH=" + filepath.Dir(c.cfg.Python) + ":/usr/local/bin:/usr/bin:/bin", "HOME=" + home,
		"TMPDIR=" + home, "LANG=C.UTF-8", "PIP_NO_CACHE_DIR=0", "PIP_CACHE_DIR=" + filepath.Join(c.cfg.Root, ".pip-cache")}
	for _, k := range PipVariables {
		if v := c.cfg.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// closeModes takes group and others' write access off everything in dir (a umask of 002 would leave it
// there), so verify accepts what the worker built.
func closeModes(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if m := fi.Mode().Perm(); m&0o022 != 0 {
			return os.Chmod(p, m&^0o022)
		}
		return nil
	})
}

// rewriteShebangs points the console scripts pip wrote at the environment's final place.
func rewriteShebangs(bin, from, to string) error {
	entries, err := os.ReadDir(bin)
	if err != nil {
		return err
	}
	prefix := []byte("#!" + from + "/")
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(bin, e.Name())
		b, err := os.ReadFile(p)
		if err != nil || !bytes.HasPrefix(b, prefix) {
			continue
		}
		b = append([]byte("#!"+to+"/"), b[len(prefix):]...)
		info, _ := e.Info()
		if err := os.WriteFile(p, b, info.Mode().Perm()); err != nil {
			return err
		}
	}
	return nil
}

func (c *Cache) lease(env Env) *Lease {
	c.mu.Lock()
	c.leases[env.Key]++
	c.mu.Unlock()
	now := time.Now()
	_ = os.Chtimes(filepath.Join(env.Dir, marker), now, now) // last use, for eviction
	return &Lease{Env: env, c: c}
}

func (c *Cache) release(key string) {
	c.mu.Lock()
	c.leases[key]--
	if c.leases[key] <= 0 {
		delete(c.leases, key)
	}
	c.mu.Unlock()
}

// remove moves an environment aside and deletes it, so no half-deleted folder stays under its key.
func (c *Cache) remove(key string) {
	dir := c.envAt(key).Dir
	trash := filepath.Join(c.cfg.Root, ".trash-"+key+"-"+randomSuffix())
	if err := os.Rename(dir, trash); err == nil {
		dir = trash
	}
	_ = os.RemoveAll(dir)
	c.mu.Lock()
	delete(c.verified, key)
	c.mu.Unlock()
}

// evict removes least recently used, unleased environments while the cache is over its bound. keep is
// never evicted (it was just built for a waiting caller).
func (c *Cache) evict(keep string) {
	if c.cfg.MaxBytes <= 0 {
		return
	}
	type entry struct {
		key  string
		size int64
		used time.Time
	}
	var all []entry
	var total int64
	entries, _ := os.ReadDir(c.cfg.Root)
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		st, err := os.Stat(filepath.Join(c.cfg.Root, e.Name(), marker))
		if err != nil {
			continue
		}
		size := dirSize(filepath.Join(c.cfg.Root, e.Name()))
		total += size
		all = append(all, entry{e.Name(), size, st.ModTime()})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].used.Before(all[j].used) })
	for _, e := range all {
		if total <= c.cfg.MaxBytes {
			return
		}
		c.mu.Lock()
		inUse := c.leases[e.key] > 0 || c.building[e.key] != nil
		c.mu.Unlock()
		if inUse || e.key == keep {
			continue
		}
		c.log.Info("evicting script environment", "env", e.key, "size_bytes", e.size, "last_used", e.used)
		c.remove(e.key)
		total -= e.size
	}
}

// removeStaleBuilds deletes temporary folders of builds whose process is gone.
func (c *Cache) removeStaleBuilds() {
	entries, _ := os.ReadDir(c.cfg.Root)
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".trash-"):
		case strings.HasPrefix(name, ".build-"):
			parts := strings.Split(name, "-")
			if len(parts) >= 4 {
				var pid int
				fmt.Sscanf(strings.Split(parts[2], ".")[0], "%d", &pid)
				if pid > 0 && pid != os.Getpid() && syscall.Kill(pid, 0) == nil {
					continue // a live build of another worker sharing this cache
				}
			}
		default:
			continue
		}
		c.log.Info("removing leftover of an interrupted build", "dir", name)
		_ = os.RemoveAll(filepath.Join(c.cfg.Root, name))
	}
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func tail(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return s
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return "no output"
}
