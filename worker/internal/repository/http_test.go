package repository

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// bundleServer serves bundles at /scripts/<name>.tar.gz with validators and counts its answers by status.
type bundleServer struct {
	mu       sync.Mutex
	bundles  map[string][]byte
	etags    map[string]string
	modified map[string]time.Time
	status   map[int]int
	down     bool
	mode     string // "etag" (default), "last-modified", "none"
	*httptest.Server
}

func newBundleServer(t *testing.T) *bundleServer {
	s := &bundleServer{bundles: map[string][]byte{}, etags: map[string]string{}, modified: map[string]time.Time{}, status: map[int]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *bundleServer) put(name string, data []byte, etag string, modified time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bundles[name], s.etags[name], s.modified[name] = data, etag, modified
}

func (s *bundleServer) count(status int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status[status]
}

func (s *bundleServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	code := s.answer(w, r)
	s.status[code]++
}

func (s *bundleServer) answer(w http.ResponseWriter, r *http.Request) int {
	if s.down {
		http.Error(w, "down", http.StatusBadGateway)
		return http.StatusBadGateway
	}
	if r.Header.Get("Accept-Encoding") != "identity" {
		http.Error(w, "want identity encoding", http.StatusBadRequest)
		return http.StatusBadRequest
	}
	name, ok := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/scripts/"), ".tar.gz")
	data, found := s.bundles[name]
	if !ok || !found {
		http.NotFound(w, r)
		return http.StatusNotFound
	}
	switch s.mode {
	case "", "etag":
		w.Header().Set("ETag", s.etags[name])
		if r.Header.Get("If-None-Match") == s.etags[name] {
			w.WriteHeader(http.StatusNotModified)
			return http.StatusNotModified
		}
	case "last-modified":
		w.Header().Set("Last-Modified", s.modified[name].UTC().Format(http.TimeFormat))
		if since, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && !s.modified[name].After(since) {
			w.WriteHeader(http.StatusNotModified)
			return http.StatusNotModified
		}
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(data)))
	w.Write(data)
	return http.StatusOK
}

func openHTTP(t *testing.T, base string, ttl time.Duration) *Remote {
	t.Helper()
	repo, err := Open(context.Background(), Options{
		Type: TypeHTTP, URL: base,
		Cache: CacheOptions{Dir: t.TempDir(), TTL: ttl, FetchTimeout: 10 * time.Second, Limits: testLimits, Logger: testLogger(t)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := repo.(*Remote)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	return r
}

func TestHTTPRepositoryETag(t *testing.T) {
	t.Parallel()
	srv := newBundleServer(t)
	srv.put("hello", scriptBundle(t, "1"), `"v1"`, time.Time{})
	repo := openHTTP(t, srv.URL+"/scripts", 0) // no trailing slash: added
	ctx := context.Background()

	first, err := repo.Resolve(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if first.Version != "etag:v1" || !strings.Contains(readScript(t, first), "return 1") {
		t.Fatalf("first: %+v", first)
	}
	for range 3 {
		if got, err := repo.Resolve(ctx, "hello"); err != nil || got != first {
			t.Fatalf("revalidated: %+v %v", got, err)
		}
	}
	if srv.count(http.StatusOK) != 1 || srv.count(http.StatusNotModified) != 3 {
		t.Fatalf("answers: %d × 200, %d × 304; want 1 and 3", srv.count(http.StatusOK), srv.count(http.StatusNotModified))
	}
	srv.put("hello", scriptBundle(t, "2"), `W/"v2"`, time.Time{})
	second, err := repo.Resolve(ctx, "hello")
	if err != nil || second.Version != "etag:v2" || !strings.Contains(readScript(t, second), "return 2") {
		t.Fatalf("second: %+v %v", second, err)
	}
	if _, err := repo.Resolve(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	// Server errors: the cached copy serves; an uncached script fails with the status.
	srv.mu.Lock()
	srv.down = true
	srv.mu.Unlock()
	if got, err := repo.Resolve(ctx, "hello"); err != nil || got != second {
		t.Fatalf("server down: %+v %v", got, err)
	}
	if _, err := repo.Resolve(ctx, "other"); err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("server down, uncached: %v", err)
	}
}

func TestHTTPRepositoryLastModifiedAndNoValidators(t *testing.T) {
	t.Parallel()
	srv := newBundleServer(t)
	srv.mode = "last-modified"
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	srv.put("hello", scriptBundle(t, "1"), "", t0)
	repo := openHTTP(t, srv.URL+"/scripts/", 0)
	ctx := context.Background()
	first, err := repo.Resolve(ctx, "hello")
	if err != nil || first.Version != "modified:2026-03-01T12:00:00Z" {
		t.Fatalf("first: %+v %v", first, err)
	}
	repo.Resolve(ctx, "hello")
	if srv.count(http.StatusNotModified) != 1 {
		t.Fatalf("If-Modified-Since not used: %d × 304", srv.count(http.StatusNotModified))
	}

	srv.mu.Lock()
	srv.mode = "none"
	srv.mu.Unlock()
	srv.put("plain", scriptBundle(t, "1"), "", time.Time{})
	got, err := repo.Resolve(ctx, "plain")
	if err != nil || !strings.HasPrefix(got.Version, "sha256:") {
		t.Fatalf("no validators: %+v %v", got, err)
	}
}

func TestHTTPRepositoryRefusesTruncatedBodies(t *testing.T) {
	t.Parallel()
	data := scriptBundle(t, "1")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)+100))
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	repo := openHTTP(t, srv.URL, 0)
	if _, err := repo.Resolve(context.Background(), "hello"); err == nil {
		t.Fatal("a truncated download was accepted")
	}
}
