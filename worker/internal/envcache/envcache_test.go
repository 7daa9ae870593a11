package envcache

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/wheeltest"
)

// python returns the worker's interpreter as the runner would resolve it.
func python(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("envcache tests need python3 with pip")
	}
	out, err := exec.Command(p, "-I", "-S", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

type fixture struct {
	cache  *Cache
	wheels string
	builds atomic.Int64
	hits   atomic.Int64
}

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	f := &fixture{wheels: t.TempDir()}
	wheeltest.Build(t, f.wheels, "conflictpkg", "1.0", "")
	wheeltest.Build(t, f.wheels, "conflictpkg", "2.0", "")
	cfg := Config{
		Root:   filepath.Join(t.TempDir(), "envs"),
		Python: python(t),
		Getenv: func(k string) string {
			return map[string]string{"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": f.wheels}[k]
		},
		Logger:  slog.New(slog.DiscardHandler),
		Metrics: f,
	}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Wait) // before the temporary folders go
	f.cache = c
	return f
}

// EnvBuilt and EnvHit make the fixture the cache's Metrics.
func (f *fixture) EnvBuilt(string, time.Duration) { f.builds.Add(1) }
func (f *fixture) EnvHit()                        { f.hits.Add(1) }

func requirements(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "requirements.txt")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func importedVersion(t *testing.T, env Env) string {
	t.Helper()
	out, err := exec.Command(env.Python, "-I", "-c", "import conflictpkg; print(conflictpkg.VERSION)").CombinedOutput()
	if err != nil {
		t.Fatalf("import in %s: %v: %s", env.Dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestConflictingVersionsAreIsolated(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	r1 := requirements(t, "conflictpkg==1.0\n")
	r2 := requirements(t, "conflictpkg==2.0\n")
	var wg sync.WaitGroup
	leases := make([]*Lease, 2)
	errs := make([]error, 2)
	for i, r := range []string{r1, r2} {
		wg.Add(1)
		go func() { defer wg.Done(); leases[i], errs[i] = f.cache.Get(ctx, r) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := importedVersion(t, leases[0].Env); got != "1.0" {
		t.Errorf("env 1 imports conflictpkg %s", got)
	}
	if got := importedVersion(t, leases[1].Env); got != "2.0" {
		t.Errorf("env 2 imports conflictpkg %s", got)
	}
	// The worker's own interpreter is untouched.
	if out, err := exec.Command(python(t), "-c", "import conflictpkg").CombinedOutput(); err == nil {
		t.Fatalf("conflictpkg leaked into the worker's interpreter: %s", out)
	}
}

func TestConcurrentRequestsShareOneBuild(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	r := requirements(t, "conflictpkg==1.0\n")
	var wg sync.WaitGroup
	dirs := make([]string, 6)
	for i := range dirs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := f.cache.Get(context.Background(), r)
			if err != nil {
				t.Error(err)
				return
			}
			dirs[i] = l.Dir
			l.Release()
		}()
	}
	wg.Wait()
	if f.builds.Load() != 1 {
		t.Fatalf("%d builds for one requirements file", f.builds.Load())
	}
	for _, d := range dirs {
		if d != dirs[0] {
			t.Fatalf("different environments: %v", dirs)
		}
	}
	// Same requirements with cosmetic differences map to the same environment.
	l, err := f.cache.Get(context.Background(), requirements(t, "\r\nconflictpkg==1.0   \r\n\r\n"))
	if err != nil || l.Dir != dirs[0] || f.builds.Load() != 1 {
		t.Fatalf("normalised requirements rebuilt: %v %s", err, l.Dir)
	}
	if f.hits.Load() == 0 {
		t.Fatal("cache hits not counted")
	}
}

func TestFailedInstallIsReportedAndRemembered(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	r := requirements(t, "conflictpkg==9.9\n")
	_, err := f.cache.Get(context.Background(), r)
	var ie *InstallError
	if !errors.Is(err, ErrInstallFailed) || !errors.As(err, &ie) {
		t.Fatalf("want an install error, got %v", err)
	}
	if !strings.Contains(ie.Output, "conflictpkg==9.9") {
		t.Fatalf("pip's output tail missing: %q", ie.Output)
	}
	// Asking again within the failure TTL does not run pip again.
	if _, err := f.cache.Get(context.Background(), r); !errors.Is(err, ErrInstallFailed) || f.builds.Load() != 1 {
		t.Fatalf("failure not remembered: %v, builds %d", err, f.builds.Load())
	}
	// Nothing half-built is left behind.
	entries, _ := os.ReadDir(f.cache.cfg.Root)
	for _, e := range entries {
		if e.Name() != ".pip-cache" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func TestInterruptedAndBrokenBuildsAreRecovered(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	r := requirements(t, "conflictpkg==2.0\n")
	req, _ := os.ReadFile(r)
	key := f.cache.Key(req)
	root := f.cache.cfg.Root
	// A crash mid-build leaves a temporary folder of a dead process, and a broken environment sits under
	// the key (its interpreter link points nowhere).
	stale := filepath.Join(root, ".build-"+key+"-999999999-dead")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(root, key)
	if err := os.MkdirAll(filepath.Join(broken, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Symlink("/nonexistent/python", filepath.Join(broken, "bin", "python"))
	_ = os.WriteFile(filepath.Join(broken, marker), []byte("{}"), 0o644)

	c2, err := New(f.cache.cfg) // a restarted worker
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatal("temporary folder of an interrupted build was not removed")
	}
	l, err := c2.Get(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if got := importedVersion(t, l.Env); got != "2.0" {
		t.Fatalf("rebuilt environment imports %s", got)
	}
}

func TestEvictionKeepsLeasedEnvironments(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(c *Config) { c.MaxBytes = 1 }) // every build puts the cache over its bound
	ctx := context.Background()
	l1, err := f.cache.Get(ctx, requirements(t, "conflictpkg==1.0\n"))
	if err != nil {
		t.Fatal(err)
	}
	// Env 1 is leased: building env 2 must not evict it.
	l2, err := f.cache.Get(ctx, requirements(t, "conflictpkg==2.0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(l1.Dir); err != nil {
		t.Fatal("a leased environment was evicted")
	}
	l1.Release()
	l2.Release()
	// Once released, the next build evicts the least recently used.
	if _, err := f.cache.Get(ctx, requirements(t, "conflictpkg==1.0\nconflictpkg\n")); err != nil {
		t.Fatal(err)
	}
	// Eviction runs after the waiting caller has its environment, so wait for it.
	end := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(l1.Dir); os.IsNotExist(err) {
			break
		}
		if time.Now().After(end) {
			t.Fatal("least recently used environment not evicted")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRequirementsMayNotCarryPipOptions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	for _, bad := range []string{"--index-url http://evil.invalid/simple\nconflictpkg==1.0\n", "-e git+https://x\n", "-r ../../secrets.txt\n",
		"  --extra-index-url=http://x\n", "./localpkg\n", "/abs/path\n", "file:///etc\n"} {
		_, err := f.cache.Get(context.Background(), requirements(t, bad))
		var ie *InstallError
		if !errors.As(err, &ie) || !strings.Contains(ie.Reason, "not allowed") {
			t.Errorf("%q: want a refusal, got %v", bad, err)
		}
	}
	if f.builds.Load() != 0 {
		t.Fatal("pip ran for a refused requirements file")
	}
	if err := CheckRequirements([]byte("# comment\nconflictpkg==1.0 --hash=sha256:abc\n\n")); err != nil {
		t.Fatalf("per-requirement options must stay allowed: %v", err)
	}
}
