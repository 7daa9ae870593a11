package repository

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/worker/internal/privatedir"
)

// source is one kind of remote repository: S3, git or HTTP. A Remote puts a cache in front of it.
type source interface {
	// describe says where scripts come from, without credentials.
	describe() string
	// fetch asks the remote for the current bundle of script name. have identifies the cached copy (zero
	// when there is none or it cannot be trusted). An unknown script is ErrNotFound.
	fetch(ctx context.Context, name string, have remoteState) (fetched, error)
}

// invalidator is implemented by sources that keep remote-wide state (git's last fetch).
type invalidator interface{ invalidate() }

// remoteState identifies a copy at its origin. It is persisted next to the copy.
type remoteState struct {
	// Version is what replies report as script_version.
	Version string `json:"version"`
	// Validator is the source's identity of the content: S3 VersionId or ETag, HTTP ETag, git tree hash.
	Validator string `json:"validator,omitempty"`
	// LastModified is HTTP's Last-Modified, for If-Modified-Since.
	LastModified string `json:"last_modified,omitempty"`
}

// fetched is a source's answer.
type fetched struct {
	state remoteState
	// body streams the bundle. nil means have's content is current; state may still differ from have (a new
	// git commit that left the script's folder as it was has a new version and the same content).
	body io.ReadCloser
	// gzip: body is a .tar.gz (S3, HTTP); otherwise a plain tar (git archive).
	gzip bool
	// size is body's expected length (-1: unknown); sha256 its expected hex digest ("": unknown).
	size   int64
	sha256 string
	// observed is when the remote was asked (zero: now). git answers from a fetch made a moment earlier.
	observed time.Time
}

// CacheOptions configure the on-disk cache in front of a remote repository.
type CacheOptions struct {
	// Dir holds the cache; it is created. One worker process per folder (it is locked).
	Dir string
	// TTL is how long a resolved script is served before the remote is asked again (0: every time).
	TTL time.Duration
	// FetchTimeout bounds one refresh: asking the remote, downloading, extracting, checking.
	FetchTimeout time.Duration
	// Limits bound a bundle.
	Limits Limits
	// Logger receives the cache's warnings; nil discards them.
	Logger *slog.Logger
	// Metrics records fetches and cache problems; nil records nothing.
	Metrics Metrics
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
	// LockWait is how long opening waits for a folder locked by another process (0: DefaultLockWait).
	LockWait time.Duration
}

// DefaultLockWait covers a worker restarted while its previous process is still exiting.
const DefaultLockWait = 5 * time.Second

// notFoundTTL is how long "no such script" is remembered, so a flood of requests for an unknown name does
// not become a flood of requests to the remote, while a newly published script shows up quickly.
const notFoundTTL = 5 * time.Second

// retention is how long a replaced copy stays on disk: longer than any run that may have started on it.
const retention = contract.MaxTimeout + time.Minute

// Remote is a Repository over a remote source with an on-disk cache. See the package documentation for
// the cache's rules; in short: a copy is served for TTL, then the remote is asked (conditionally) again;
// downloads go to a temporary folder, are checked and extracted safely, and appear by an atomic rename;
// one refresh per script at a time; a cached copy is checked against its inventory before it is trusted
// again; when the remote cannot be reached the last good copy is served and the problem logged.
type Remote struct {
	src  source
	opts CacheOptions
	log  *slog.Logger
	now  func() time.Time
	lock io.Closer
	// stop is the parent of every refresh; Shutdown cancels it. bg counts the refreshes in flight.
	stop       context.Context
	cancelStop context.CancelFunc
	bg         sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	scripts map[string]*entry
}

var (
	_ Repository = (*Remote)(nil)
	_ Refresher  = (*Remote)(nil)
)

// entry is the cache's state of one script. Its fields are guarded by Remote.mu; only the refresh in
// flight (at most one per script) changes them.
type entry struct {
	cur      *copyState // the copy in use, nil when there is none
	checked  time.Time  // when the remote last confirmed cur, or said there is no such script
	notFound bool
	loaded   bool // the state on disk has been read
	gen      int  // bumped by Invalidate
	flight   *flight
	retired  []retiredCopy
}

// copyState is a copy on disk, as persisted in <cache>/<name>/current.json.
type copyState struct {
	Remote remoteState `json:"remote"`
	// Dir is the copy's folder name under <cache>/<name>/: its content key.
	Dir       string    `json:"dir"`
	Files     Inventory `json:"files"`
	FetchedAt time.Time `json:"fetched_at"`
}

type retiredCopy struct {
	dir string
	at  time.Time
}

type flight struct {
	done   chan struct{}
	script Script
	err    error
}

const stateFile = "current.json"

var keyPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)

// newRemote opens the cache at opts.Dir; the caller sets its source.
func newRemote(opts CacheOptions) (*Remote, error) {
	if opts.Dir == "" {
		return nil, errors.New("script cache: a folder is required")
	}
	opts = opts.withDefaults()
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("script cache %q: %w", opts.Dir, err)
	}
	// Private to the worker (an existing folder another user owns or may write to is refused: what is in it
	// would run); 0711 so scripts run as another user (SCRIPT_RUN_AS) reach their folders inside.
	if err := privatedir.Ensure(dir, 0o711); err != nil {
		return nil, fmt.Errorf("script cache: %w", err)
	}
	opts.Dir = dir
	lock, err := lockDir(dir, opts.LockWait)
	if err != nil {
		return nil, fmt.Errorf("script cache %s: %w", dir, err)
	}
	stop, cancel := context.WithCancel(context.Background())
	return &Remote{opts: opts, log: opts.Logger, now: opts.Now, lock: lock, stop: stop, cancelStop: cancel,
		scripts: map[string]*entry{}}, nil
}

// DefaultFetchTimeout is CacheOptions.FetchTimeout's default.
const DefaultFetchTimeout = time.Minute

// withDefaults returns o with every zero field set to its default.
func (o CacheOptions) withDefaults() CacheOptions {
	if o.Limits == (Limits{}) {
		o.Limits = DefaultLimits
	}
	if o.FetchTimeout <= 0 {
		o.FetchTimeout = DefaultFetchTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = nopMetrics{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LockWait <= 0 {
		o.LockWait = DefaultLockWait
	}
	return o
}

// Describe implements Repository.
func (r *Remote) Describe() string {
	return fmt.Sprintf("%s (cache %s, ttl %s)", r.src.describe(), r.opts.Dir, r.opts.TTL)
}

// Shutdown interrupts the refreshes in flight and waits until they have ended, or until ctx ends; then it
// releases the cache folder's lock (also when ctx ended first: the interrupted refreshes only finish
// failing). Resolve fails afterwards. It returns ctx's error or the unlock's.
func (r *Remote) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	already := r.closed
	r.closed = true
	r.mu.Unlock()
	if already {
		return nil
	}
	r.cancelStop()
	done := make(chan struct{})
	go func() { r.bg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("script cache shutdown: %w", ctx.Err())
	}
	return errors.Join(err, r.lock.Close())
}

// Invalidate implements Refresher: the next Resolve of name (of every script when name is "") asks the
// remote, whatever the TTL says.
func (r *Remote) Invalidate(name string) {
	if inv, ok := r.src.(invalidator); ok {
		inv.invalidate()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for n, e := range r.scripts {
		if name == "" || n == name {
			e.checked = time.Time{}
			e.gen++
		}
	}
}

// Resolve implements Repository.
func (r *Remote) Resolve(ctx context.Context, name string) (Script, error) {
	if err := validName(name); err != nil {
		return Script{}, fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return Script{}, errors.New("script cache: the repository has been shut down")
	}
	e := r.scripts[name]
	if e == nil {
		e = &entry{}
		r.scripts[name] = e
	}
	if s, err, ok := r.fresh(name, e); ok {
		r.mu.Unlock()
		return s, err
	}
	f := e.flight
	if f == nil {
		f = &flight{done: make(chan struct{})}
		e.flight = f
		r.bg.Go(func() { r.refresh(name, e, f) })
	}
	r.mu.Unlock()
	select {
	case <-f.done:
		return f.script, f.err
	case <-ctx.Done():
		return Script{}, ctx.Err()
	}
}

// fresh answers from the cache when the last check is recent enough. r.mu is held.
func (r *Remote) fresh(name string, e *entry) (Script, error, bool) {
	if e.checked.IsZero() {
		return Script{}, nil, false
	}
	age := r.now().Sub(e.checked)
	switch {
	case e.notFound && age < min(r.opts.TTL, notFoundTTL):
		return Script{}, r.notFound(name), true
	case e.cur != nil && age < r.opts.TTL:
		return r.script(name, e.cur), nil, true
	}
	return Script{}, nil, false
}

func (r *Remote) notFound(name string) error {
	return fmt.Errorf("%w: no script named %q in %s", ErrNotFound, name, r.src.describe())
}

func (r *Remote) script(name string, c *copyState) Script {
	return Script{Name: name, Dir: filepath.Join(r.opts.Dir, name, c.Dir), Version: c.Remote.Version, Content: c.Dir}
}

// refresh runs one check of the remote for name and hands the outcome to every caller waiting on f. It
// runs detached from any one caller's context, bounded by FetchTimeout, so a caller that gives up does
// not spoil the download for the others.
func (r *Remote) refresh(name string, e *entry, f *flight) {
	ctx, cancel := context.WithTimeout(r.stop, r.opts.FetchTimeout) // Shutdown interrupts it
	defer cancel()
	r.mu.Lock()
	gen := e.gen
	r.mu.Unlock()
	s, err := r.update(ctx, name, e, gen)
	r.mu.Lock()
	e.flight = nil
	r.mu.Unlock()
	f.script, f.err = s, err
	close(f.done)
}

// update asks the remote about name and installs what it answers. It runs in the script's one flight.
func (r *Remote) update(ctx context.Context, name string, e *entry, gen int) (Script, error) {
	base := filepath.Join(r.opts.Dir, name)
	r.mu.Lock()
	cur, loaded := e.cur, e.loaded
	r.mu.Unlock()
	if !loaded {
		cur = r.load(name)
		r.mu.Lock()
		e.loaded = true
		r.mu.Unlock()
	}
	// A copy is trusted again only while it still matches its inventory.
	if cur != nil {
		dir := filepath.Join(base, cur.Dir)
		// Copies installed by earlier versions are 0700 (MkdirTemp's mode); scripts run as another user
		// must read them, as install makes them now.
		if fi, err := os.Lstat(dir); err == nil && fi.IsDir() && fi.Mode().Perm() != 0o755 {
			_ = os.Chmod(dir, 0o755)
		}
		if err := VerifyDir(dir, cur.Files); err != nil {
			r.log.Warn("cached script copy is damaged; downloading it again", "script", name,
				"script_version", cur.Remote.Version, "error", err)
			r.opts.Metrics.DamagedCopy()
			cur = nil
		}
	}
	var have remoteState
	if cur != nil {
		have = cur.Remote
	}
	started := r.now()
	res, err := r.src.fetch(ctx, name, have)
	if errors.Is(err, ErrNotFound) {
		r.opts.Metrics.ScriptFetched("not_found")
		_ = os.Remove(filepath.Join(base, stateFile))
		r.commit(name, e, gen, nil, started, true)
		return Script{}, err
	}
	if err != nil {
		r.opts.Metrics.ScriptFetched("failed")
		return r.fallback(name, e, gen, cur, err)
	}
	observed := res.observed
	if observed.IsZero() {
		observed = started
	}
	if res.body == nil {
		if cur == nil {
			r.opts.Metrics.ScriptFetched("failed")
			return r.fallback(name, e, gen, nil, fmt.Errorf("%s answered 'not modified' for a copy this worker does not have", r.src.describe()))
		}
		r.opts.Metrics.ScriptFetched("not_modified")
		next := *cur
		next.Remote = res.state
		if next.Remote != cur.Remote {
			if err := r.persist(name, &next); err != nil {
				r.log.Warn("could not record the script's new version on disk", "script", name, "error", err)
			}
		}
		return r.commit(name, e, gen, &next, observed, false), nil
	}
	next, err := r.install(ctx, name, res)
	if err != nil {
		r.opts.Metrics.ScriptFetched("failed")
		return r.fallback(name, e, gen, cur, err)
	}
	r.opts.Metrics.ScriptFetched("downloaded")
	r.log.Info("script downloaded", "script", name, "script_version", next.Remote.Version,
		"files", len(next.Files), "bytes", next.Files.Size())
	return r.commit(name, e, gen, next, observed, false), nil
}

// commit records the outcome of a check. A copy it replaces is retired, not deleted: runs that started on
// it finish on it.
func (r *Remote) commit(name string, e *entry, gen int, next *copyState, checked time.Time, notFound bool) Script {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if e.cur != nil && (next == nil || next.Dir != e.cur.Dir) {
		e.retired = append(e.retired, retiredCopy{dir: e.cur.Dir, at: now})
	}
	e.cur, e.notFound, e.checked = next, notFound, checked
	if e.gen != gen { // Invalidate was called while we were asking: ask again next time
		e.checked = time.Time{}
	}
	kept := e.retired[:0]
	for _, old := range e.retired {
		switch {
		case next != nil && old.dir == next.Dir: // back in use
		case now.Sub(old.at) > retention:
			_ = os.RemoveAll(filepath.Join(r.opts.Dir, name, old.dir))
		default:
			kept = append(kept, old)
		}
	}
	e.retired = kept
	if next == nil {
		return Script{}
	}
	return r.script(name, next)
}

// fallback answers when the remote could not be asked or its bundle was bad: the last good copy if there
// is one (logged; the remote is asked again after TTL), the error otherwise.
func (r *Remote) fallback(name string, e *entry, gen int, cur *copyState, cause error) (Script, error) {
	if cur == nil {
		r.mu.Lock()
		e.cur, e.checked = nil, time.Time{}
		r.mu.Unlock()
		return Script{}, fmt.Errorf("fetch script %q from %s: %w", name, r.src.describe(), cause)
	}
	r.log.Warn("script repository could not be used; serving the cached copy", "script", name,
		"script_version", cur.Remote.Version, "error", cause)
	r.opts.Metrics.StaleServed()
	return r.commit(name, e, gen, cur, r.now(), false), nil
}

// install downloads res into a temporary folder, checks it, and renames it into place.
func (r *Remote) install(ctx context.Context, name string, res fetched) (*copyState, error) {
	base := filepath.Join(r.opts.Dir, name)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(base, ".tmp-")
	if err == nil {
		// MkdirTemp makes it 0700; scripts that run as another user (SCRIPT_RUN_AS) must read the copy,
		// as they read its files (0644) and folders (0755). The cache folder above stays private.
		err = os.Chmod(tmp, 0o755)
	}
	if err != nil {
		_ = res.body.Close()
		_ = os.RemoveAll(tmp)
		return nil, err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	// The compressed stream is bounded too: gzip cannot make a bundle much larger than its content.
	body := &countingReader{r: res.body, limit: compressedLimit(r.opts.Limits)}
	h := sha256.New()
	in := io.TeeReader(body, h)
	var inv Inventory
	if res.gzip {
		inv, err = ExtractTarGz(in, tmp, r.opts.Limits)
	} else {
		inv, err = ExtractTar(in, tmp, r.opts.Limits)
	}
	if cerr := res.body.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err == nil {
		err = checkStream(body.n, h, res.size, res.sha256)
	}
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	next := &copyState{Remote: res.state, Dir: inv.Key(), Files: inv, FetchedAt: r.now().UTC()}
	if next.Remote.Version == "" { // the remote gave no identity: the content is its own
		next.Remote.Version = "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
	}
	if err := r.place(tmp, filepath.Join(base, next.Dir), inv); err != nil {
		return nil, err
	}
	if err := r.persist(name, next); err != nil {
		return nil, err
	}
	return next, nil
}

func checkStream(n int64, h hash.Hash, size int64, sum string) error {
	if size >= 0 && n != size {
		return fmt.Errorf("%w: got %d bytes, the remote announced %d", ErrInvalidBundle, n, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); sum != "" && !strings.EqualFold(got, sum) {
		return fmt.Errorf("%w: sha256 is %s, the remote announced %s", ErrInvalidBundle, got, sum)
	}
	return nil
}

// place renames the checked folder tmp to final. When final exists (the same content was fetched
// before) and is intact it is kept; a damaged one is replaced.
func (r *Remote) place(tmp, final string, inv Inventory) error {
	err := os.Rename(tmp, final)
	if err == nil {
		return nil
	}
	if _, serr := os.Stat(final); serr != nil {
		return err
	}
	if VerifyDir(final, inv) == nil {
		return nil
	}
	trash := tmp + ".damaged"
	if err := os.Rename(final, trash); err != nil {
		return err
	}
	defer os.RemoveAll(trash)
	return os.Rename(tmp, final)
}

// persist writes name's state file atomically.
func (r *Remote) persist(name string, c *copyState) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(r.opts.Dir, name, stateFile)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// load reads the state a previous process left for name, and removes what else it left: downloads that
// never finished and copies no longer in use. Nothing runs on them: the cache folder is locked.
func (r *Remote) load(name string) *copyState {
	base := filepath.Join(r.opts.Dir, name)
	var c *copyState
	if b, err := os.ReadFile(filepath.Join(base, stateFile)); err == nil {
		var s copyState
		if err := json.Unmarshal(b, &s); err == nil && keyPattern.MatchString(s.Dir) && validInventory(s.Files) {
			c = &s
		} else {
			r.log.Warn("ignoring an unreadable script cache state", "script", name, "error", err)
		}
	}
	entries, _ := os.ReadDir(base)
	for _, d := range entries {
		if d.Name() == stateFile || (c != nil && d.Name() == c.Dir) {
			continue
		}
		_ = os.RemoveAll(filepath.Join(base, d.Name()))
	}
	return c
}

func validInventory(inv Inventory) bool {
	for _, f := range inv {
		if clean, skip, err := entryPath(f.Path); err != nil || skip || clean != f.Path {
			return false
		}
	}
	return hasEntryPoint(inv)
}
