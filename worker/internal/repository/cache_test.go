package repository

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/worker/internal/privatedir"
)

// fakeSource is an in-memory remote: name → bundle, with counters and switches for failures.
type fakeSource struct {
	mu        sync.Mutex
	bundles   map[string]fakeBundle
	fail      error
	gate      chan struct{} // when set, fetch waits for it to close
	calls     int
	downloads int
}

type fakeBundle struct {
	version string
	data    []byte
}

func newFakeSource() *fakeSource { return &fakeSource{bundles: map[string]fakeBundle{}} }

func (f *fakeSource) describe() string { return "fake" }

func (f *fakeSource) put(name, version string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bundles[name] = fakeBundle{version: version, data: data}
}

func (f *fakeSource) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

func (f *fakeSource) counts() (calls, downloads int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.downloads
}

func (f *fakeSource) fetch(ctx context.Context, name string, have remoteState) (fetched, error) {
	f.mu.Lock()
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return fetched{}, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail != nil {
		return fetched{}, f.fail
	}
	b, ok := f.bundles[name]
	if !ok {
		return fetched{}, ErrNotFound
	}
	state := remoteState{Version: b.version, Validator: b.version}
	if have.Validator == b.version {
		return fetched{state: state}, nil
	}
	f.downloads++
	return fetched{state: state, body: io.NopCloser(bytes.NewReader(b.data)), gzip: true, size: int64(len(b.data))}, nil
}

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type cacheSetup struct {
	ttl     time.Duration
	src     *fakeSource
	clock   *clock
	repo    *Remote
	dir     string
	metrics *countingMetrics
}

// countingMetrics records the cache's Metrics calls.
type countingMetrics struct {
	mu              sync.Mutex
	fetches         map[string]int
	stales, damaged int
}

func (m *countingMetrics) ScriptFetched(result string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fetches[result]++
}

func (m *countingMetrics) StaleServed() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stales++
}

func (m *countingMetrics) DamagedCopy() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.damaged++
}

func (m *countingMetrics) counts() (stales, damaged int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stales, m.damaged
}

func newCacheSetup(t *testing.T, ttl time.Duration) *cacheSetup {
	t.Helper()
	s := &cacheSetup{ttl: ttl, src: newFakeSource(), clock: &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, dir: t.TempDir()}
	s.metrics = &countingMetrics{fetches: map[string]int{}}
	s.repo = s.open(t, s.src)
	return s
}

func (s *cacheSetup) open(t *testing.T, src source) *Remote {
	t.Helper()
	r, err := newRemote(CacheOptions{Dir: s.dir, TTL: s.ttl, FetchTimeout: 10 * time.Second, Limits: testLimits,
		Logger: testLogger(t), Metrics: s.metrics, Now: s.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	r.src = src
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	return r
}

func readScript(t *testing.T, s Script) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Dir, EntryPoint))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (s *cacheSetup) fetches(result string) float64 {
	s.metrics.mu.Lock()
	defer s.metrics.mu.Unlock()
	return float64(s.metrics.fetches[result])
}

func TestCacheServesWithinTTLAndRevalidatesAfter(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, 30*time.Second)
	ctx := context.Background()
	s.src.put("hello", "v1", scriptBundle(t, "1"))

	first, err := s.repo.Resolve(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if first.Version != "v1" || !strings.Contains(readScript(t, first), "return 1") || !strings.HasPrefix(first.Dir, s.dir) {
		t.Fatalf("first resolve: %+v", first)
	}
	// Scripts that run as another user (SCRIPT_RUN_AS) read the copy: its folder and files are theirs to read.
	for _, p := range []string{first.Dir, filepath.Join(first.Dir, "scraper.py")} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o004 == 0 || (fi.IsDir() && fi.Mode().Perm()&0o001 == 0) {
			t.Fatalf("%s is not readable by other users: %v %v", p, fi.Mode(), err)
		}
	}
	// Within the TTL: no question to the remote.
	s.clock.Advance(29 * time.Second)
	if again, err := s.repo.Resolve(ctx, "hello"); err != nil || again != first {
		t.Fatalf("within TTL: %+v %v", again, err)
	}
	if calls, _ := s.src.counts(); calls != 1 {
		t.Fatalf("remote asked %d times within the TTL", calls)
	}
	// After it: a conditional question, nothing downloaded.
	s.clock.Advance(2 * time.Second)
	if again, err := s.repo.Resolve(ctx, "hello"); err != nil || again != first {
		t.Fatalf("after TTL, unchanged: %+v %v", again, err)
	}
	if calls, downloads := s.src.counts(); calls != 2 || downloads != 1 {
		t.Fatalf("calls %d downloads %d", calls, downloads)
	}
	// A new version is picked up after the next TTL, into a new folder; the old one stays for running scripts.
	s.src.put("hello", "v2", scriptBundle(t, "2"))
	s.clock.Advance(31 * time.Second)
	second, err := s.repo.Resolve(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if second.Version != "v2" || second.Dir == first.Dir || !strings.Contains(readScript(t, second), "return 2") {
		t.Fatalf("second: %+v", second)
	}
	if !strings.Contains(readScript(t, first), "return 1") {
		t.Fatal("the replaced copy was removed while runs may still use it")
	}
	if s.fetches("downloaded") != 2 || s.fetches("not_modified") != 1 {
		t.Errorf("metrics: downloaded %v not_modified %v", s.fetches("downloaded"), s.fetches("not_modified"))
	}
	// Past the retention, the next refresh removes the old copy.
	s.clock.Advance(retention + time.Minute)
	s.src.put("hello", "v3", scriptBundle(t, "3"))
	if _, err := s.repo.Resolve(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(first.Dir); !os.IsNotExist(err) {
		t.Errorf("old copy still there past the retention: %v", err)
	}
}

func TestCacheInvalidate(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, time.Hour)
	ctx := context.Background()
	s.src.put("hello", "v1", scriptBundle(t, "1"))
	s.src.put("other", "o1", scriptBundle(t, "'o'"))
	if _, err := s.repo.Resolve(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.repo.Resolve(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	s.src.put("hello", "v2", scriptBundle(t, "2"))
	if got, _ := s.repo.Resolve(ctx, "hello"); got.Version != "v1" {
		t.Fatalf("before Invalidate: %s", got.Version)
	}
	s.repo.Invalidate("hello")
	if got, _ := s.repo.Resolve(ctx, "hello"); got.Version != "v2" {
		t.Fatalf("after Invalidate: %s", got.Version)
	}
	calls, _ := s.src.counts()
	if _, err := s.repo.Resolve(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.src.counts(); c != calls {
		t.Error("Invalidate(hello) made other ask the remote")
	}
	s.repo.Invalidate("")
	if _, err := s.repo.Resolve(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.src.counts(); c != calls+1 {
		t.Error(`Invalidate("") did not reach other`)
	}
}

func TestCacheRefetchesDamagedCopies(t *testing.T) {
	t.Parallel()
	for name, damage := range map[string]func(dir string) error{
		"edited": func(d string) error {
			return os.WriteFile(filepath.Join(d, EntryPoint), []byte("def scrape(p): return 'evil'\n"), 0o644)
		},
		"deleted": func(d string) error { return os.Remove(filepath.Join(d, EntryPoint)) },
		"added":   func(d string) error { return os.WriteFile(filepath.Join(d, "sitecustomize.py"), []byte("x"), 0o644) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := newCacheSetup(t, 30*time.Second)
			ctx := context.Background()
			s.src.put("hello", "v1", scriptBundle(t, "1"))
			first, err := s.repo.Resolve(ctx, "hello")
			if err != nil {
				t.Fatal(err)
			}
			if err := damage(first.Dir); err != nil {
				t.Fatal(err)
			}
			s.clock.Advance(31 * time.Second)
			again, err := s.repo.Resolve(ctx, "hello")
			if err != nil {
				t.Fatal(err)
			}
			if _, downloads := s.src.counts(); downloads != 2 {
				t.Fatalf("damaged copy not downloaded again (%d downloads)", downloads)
			}
			if again.Dir != first.Dir || !strings.Contains(readScript(t, again), "return 1") {
				t.Fatalf("copy not restored: %+v", again)
			}
			if err := VerifyDir(again.Dir, s.repo.scripts["hello"].cur.Files); err != nil {
				t.Fatal(err)
			}
			if _, damaged := s.metrics.counts(); damaged != 1 {
				t.Error("damage not counted")
			}
		})
	}
}

func TestCacheNeverServesADamagedCopyWhenTheRemoteIsDown(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, 30*time.Second)
	ctx := context.Background()
	s.src.put("hello", "v1", scriptBundle(t, "1"))
	first, err := s.repo.Resolve(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(first.Dir, EntryPoint), []byte("tampered"), 0o644)
	s.src.setFail(errors.New("connection refused"))
	s.clock.Advance(31 * time.Second)
	if _, err := s.repo.Resolve(ctx, "hello"); err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v, want the remote's error", err)
	}
}

func TestCacheServesTheLastGoodCopyWhenTheRemoteFails(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, 30*time.Second)
	ctx := context.Background()
	s.src.put("hello", "v1", scriptBundle(t, "1"))
	first, err := s.repo.Resolve(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	s.src.setFail(errors.New("connection refused"))
	s.clock.Advance(31 * time.Second)
	got, err := s.repo.Resolve(ctx, "hello")
	if err != nil || got != first {
		t.Fatalf("remote down: %+v %v", got, err)
	}
	if stales, _ := s.metrics.counts(); stales != 1 || s.fetches("failed") != 1 {
		t.Error("stale serving not counted")
	}
	// The failure is not retried on every request: the next question comes after the TTL.
	calls, _ := s.src.counts()
	s.repo.Resolve(ctx, "hello")
	if c, _ := s.src.counts(); c != calls {
		t.Error("remote asked again within the TTL after a failure")
	}
	// A bad bundle counts as a failure too: the good copy stays in service.
	s.src.setFail(nil)
	s.src.put("hello", "v2", makeBundle(t, file("scraper.py", "x"), tarEntry{Name: "evil", Type: '2', Linkname: "/etc/passwd"}))
	s.clock.Advance(31 * time.Second)
	if got, err := s.repo.Resolve(ctx, "hello"); err != nil || got.Version != "v1" {
		t.Fatalf("bad bundle: %+v %v", got, err)
	}
	// Without a copy the failure is the answer, and it is not ErrNotFound.
	s.src.setFail(errors.New("connection refused"))
	s.src.put("fresh", "f1", scriptBundle(t, "1"))
	if _, err := s.repo.Resolve(ctx, "fresh"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("no copy: err = %v", err)
	}
}

func TestCacheNotFound(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, 30*time.Second)
	ctx := context.Background()
	for _, name := range []string{"../etc", "/abs", ".hidden", "a/b", "", "Upper"} {
		if _, err := s.repo.Resolve(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Errorf("Resolve(%q) = %v", name, err)
		}
	}
	if calls, _ := s.src.counts(); calls != 0 {
		t.Fatalf("invalid names reached the remote (%d calls)", calls)
	}
	if _, err := s.repo.Resolve(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	// Remembered briefly, then asked again: a script published meanwhile shows up.
	s.repo.Resolve(ctx, "missing")
	if calls, _ := s.src.counts(); calls != 1 {
		t.Fatalf("not-found not remembered: %d calls", calls)
	}
	s.src.put("missing", "m1", scriptBundle(t, "1"))
	s.clock.Advance(notFoundTTL + time.Second)
	if got, err := s.repo.Resolve(ctx, "missing"); err != nil || got.Version != "m1" {
		t.Fatalf("after publishing: %+v %v", got, err)
	}
	// A deleted script is gone after the TTL.
	s.src.mu.Lock()
	delete(s.src.bundles, "missing")
	s.src.mu.Unlock()
	s.clock.Advance(31 * time.Second)
	if _, err := s.repo.Resolve(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after deleting: %v", err)
	}
}

func TestCacheConcurrentResolvesDownloadOnce(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, 30*time.Second)
	s.src.put("hello", "v1", scriptBundle(t, "1"))
	gate := make(chan struct{})
	s.src.mu.Lock()
	s.src.gate = gate
	s.src.mu.Unlock()

	const n = 20
	var wg sync.WaitGroup
	var started atomic.Int32
	results := make([]Script, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			started.Add(1)
			results[i], errs[i] = s.repo.Resolve(context.Background(), "hello")
		}()
	}
	for started.Load() < n {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let them all reach the flight
	close(gate)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || results[i] != results[0] {
			t.Fatalf("resolve %d: %+v %v", i, results[i], errs[i])
		}
	}
	if calls, downloads := s.src.counts(); calls != 1 || downloads != 1 {
		t.Fatalf("calls %d downloads %d, want 1 and 1", calls, downloads)
	}
}

func TestCacheCallerThatGivesUpDoesNotCancelTheDownload(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, 30*time.Second)
	s.src.put("hello", "v1", scriptBundle(t, "1"))
	gate := make(chan struct{})
	s.src.mu.Lock()
	s.src.gate = gate
	s.src.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := s.repo.Resolve(ctx, "hello"); done <- err }()
	time.Sleep(20 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	close(gate)
	got, err := s.repo.Resolve(context.Background(), "hello")
	if err != nil || got.Version != "v1" {
		t.Fatalf("%+v %v", got, err)
	}
	if calls, _ := s.src.counts(); calls != 1 {
		t.Fatalf("%d calls", calls)
	}
}

func TestCacheSurvivesRestart(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, 30*time.Second)
	ctx := context.Background()
	s.src.put("hello", "v1", scriptBundle(t, "1"))
	first, err := s.repo.Resolve(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	// A second process cannot use the same cache folder.
	if _, err := newRemote(CacheOptions{Dir: s.dir, LockWait: 50 * time.Millisecond}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v", err)
	}
	if err := s.repo.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Leftovers of the old process: an unfinished download and an old copy.
	os.MkdirAll(filepath.Join(s.dir, "hello", ".tmp-123", "x"), 0o755)
	os.MkdirAll(filepath.Join(s.dir, "hello", "0123456789abcdef"), 0o755)

	// The new process serves the copy on disk while the remote is down, with the version it had.
	down := newFakeSource()
	down.setFail(errors.New("no route to host"))
	repo := s.open(t, down)
	got, err := repo.Resolve(ctx, "hello")
	if err != nil || got != first {
		t.Fatalf("after restart: %+v %v", got, err)
	}
	for _, left := range []string{".tmp-123", "0123456789abcdef"} {
		if _, err := os.Stat(filepath.Join(s.dir, "hello", left)); !os.IsNotExist(err) {
			t.Errorf("leftover %s not cleaned: %v", left, err)
		}
	}
	// And revalidates it with its validator when the remote is back: no download.
	up := newFakeSource()
	up.put("hello", "v1", scriptBundle(t, "1"))
	repo.src = up
	s.clock.Advance(31 * time.Second)
	if got, err := repo.Resolve(ctx, "hello"); err != nil || got != first {
		t.Fatalf("revalidated: %+v %v", got, err)
	}
	if _, downloads := up.counts(); downloads != 0 {
		t.Fatalf("%d downloads", downloads)
	}
}

func TestCacheChecksAnnouncedSizeAndChecksum(t *testing.T) {
	t.Parallel()
	s := newCacheSetup(t, 30*time.Second)
	data := scriptBundle(t, "1")
	for name, res := range map[string]fetched{
		"short":    {size: int64(len(data)) + 1},
		"checksum": {size: -1, sha256: strings.Repeat("ab", 32)},
	} {
		res.state = remoteState{Version: "v"}
		res.body = io.NopCloser(bytes.NewReader(data))
		res.gzip = true
		if _, err := s.repo.install(context.Background(), "hello", res); !errors.Is(err, ErrInvalidBundle) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(s.dir, "hello"))
	if len(entries) != 0 {
		t.Errorf("rejected downloads left %v", entries)
	}
}

// TestCacheFolderMustBePrivate: a script cache folder that others may write to, or (as root) that another
// user owns, is refused at start: a script planted there would run.
func TestCacheFolderMustBePrivate(t *testing.T) {
	t.Parallel()
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{open: "writable by group or others"}
	if os.Getuid() == 0 {
		foreign := filepath.Join(t.TempDir(), "foreign")
		if err := os.Mkdir(foreign, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(foreign, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		cases[foreign] = "belongs to uid 65534"
	}
	for dir, why := range cases {
		_, err := newRemote(CacheOptions{Dir: dir, Limits: testLimits, Logger: testLogger(t)})
		if !errors.Is(err, privatedir.ErrNotPrivate) || !strings.Contains(err.Error(), why) {
			t.Errorf("cache in %s: %v; want a refusal saying %q", dir, err, why)
		}
	}
}
