package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/s3test"
)

var bucketSeq atomic.Int64

// newS3Store returns a store on a new bucket of server, reading time from now.
func newS3Store(t *testing.T, server *s3test.Server, now func() time.Time) *S3 {
	t.Helper()
	bucket := fmt.Sprintf("jobs-%d", bucketSeq.Add(1))
	server.CreateBucket(t, bucket, false)
	cfg, err := Load(server.Getenv("JOB_STORE_BUCKET="+bucket, "JOB_STORE_PREFIX=tenant-a"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewS3(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if now != nil {
		s.now = now
	}
	return s
}

// TestS3 runs the conformance suite and the S3-only checks against one real versitygw.
func TestS3(t *testing.T) {
	server := s3test.Start(t)
	t.Run("conformance", func(t *testing.T) {
		testStore(t, func(t *testing.T, now func() time.Time) Store { return newS3Store(t, server, now) })
	})

	t.Run("layout", func(t *testing.T) {
		t.Parallel()
		s := newS3Store(t, server, nil)
		ctx := context.Background()
		q := queued("req-layout", "alice", time.Now())
		if err := s.Create(ctx, q); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Claim(ctx, "alice", "k", "h", "req-layout"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutResult(ctx, "req-layout", []byte("1")); err != nil {
			t.Fatal(err)
		}
		keys := s3test.List(t, server, s.objs.(*s3Objects).bucket)
		want := []string{
			"tenant-a/" + idempotencyKey("alice", "k"),
			"tenant-a/jobs/req-layout/queued.json",
			"tenant-a/results/req-layout.json",
		}
		if strings.Join(keys, " ") != strings.Join(want, " ") {
			t.Errorf("objects %q, want %q", keys, want)
		}
	})

	t.Run("If-Match on a missing key", func(t *testing.T) {
		t.Parallel()
		s := newS3Store(t, server, nil)
		replaced, err := s.objs.putIfMatch(context.Background(), "idempotency/gone.json", []byte("{}"), `"abc"`)
		if err != nil || replaced {
			t.Fatalf("putIfMatch of a missing key: %v, %v; want false, nil", replaced, err)
		}
	})

	t.Run("presigned result URL", func(t *testing.T) {
		t.Parallel()
		s := newS3Store(t, server, nil)
		ctx := context.Background()
		data := []byte(`{"big":"` + strings.Repeat("x", 1<<20) + `"}`)
		key, err := s.PutResult(ctx, "req-url", data)
		if err != nil {
			t.Fatal(err)
		}
		u, err := s.ResultURL(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(u, "X-Amz-Expires=900") {
			t.Errorf("URL %s does not expire after the default 15 min", u)
		}
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK || string(body) != string(data) {
			t.Fatalf("GET presigned URL: %s, %d of %d bytes, %v", resp.Status, len(body), len(data), err)
		}
		// The URL is signed for that key only.
		other := strings.Replace(u, "req-url.json", "req-other.json", 1)
		resp2, err := http.Get(other)
		if err != nil {
			t.Fatal(err)
		}
		resp2.Body.Close()
		if resp2.StatusCode != http.StatusForbidden {
			t.Errorf("GET of the URL with another key: %s, want 403", resp2.Status)
		}
	})

	t.Run("store stopped", func(t *testing.T) {
		t.Parallel()
		stopped := s3test.Start(t)
		s := newS3Store(t, stopped, nil)
		ctx := context.Background()
		if err := s.Create(ctx, queued("req-down", "alice", time.Now())); err != nil {
			t.Fatal(err)
		}
		stopped.Stop()
		checks := map[string]error{
			"Get":    func() error { _, err := s.Get(ctx, "req-down", "alice"); return err }(),
			"Create": s.Create(ctx, queued("req-down-2", "alice", time.Now())),
			"Claim":  func() error { _, _, err := s.Claim(ctx, "alice", "k", "h", "req-down-3"); return err }(),
			"Finish": func() error {
				_, _, err := s.Finish(ctx, completed(queued("req-down", "alice", time.Now()), "1", time.Now()))
				return err
			}(),
			"CancelRequested": func() error { _, err := s.CancelRequested(ctx, "req-down"); return err }(),
		}
		for name, err := range checks {
			if err == nil || contract.Classify(err) != contract.Transient {
				t.Errorf("%s with the store stopped: %v (class %s), want a transient error", name, err, contract.Classify(err))
			}
		}
	})

	t.Run("missing bucket is not a missing job", func(t *testing.T) {
		t.Parallel()
		cfg, err := Load(server.Getenv("JOB_STORE_BUCKET=no-such-bucket"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewS3(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(context.Background(), "req-1", "alice"); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("Get in a missing bucket: %v, want a store error", err)
		}
	})
}
