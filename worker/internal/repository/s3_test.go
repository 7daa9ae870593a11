package repository

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/scrapeplatform/platform/shared/s3test"
)

// countingClient counts the S3 requests by method.
type countingClient struct {
	next   aws.HTTPClient
	mu     sync.Mutex
	counts map[string]int
}

func (c *countingClient) wrap(next aws.HTTPClient) aws.HTTPClient {
	c.next = next
	return c
}

func (c *countingClient) Do(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	if c.counts == nil {
		c.counts = map[string]int{}
	}
	c.counts[r.Method]++
	c.mu.Unlock()
	return c.next.Do(r)
}

func (c *countingClient) get(method string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[method]
}

func putBundle(t *testing.T, c *s3.Client, bucket, key string, data []byte, meta map[string]string) *s3.PutObjectOutput {
	t.Helper()
	if meta == nil {
		sum := sha256.Sum256(data)
		meta = map[string]string{BundleSHA256Metadata: hex.EncodeToString(sum[:])}
	}
	out, err := c.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data), Metadata: meta,
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func openS3(t *testing.T, srv *s3test.Server, bucket string, ttl time.Duration, client *countingClient) *Remote {
	t.Helper()
	var wrap func(aws.HTTPClient) aws.HTTPClient
	if client != nil {
		wrap = client.wrap
	}
	repo, err := Open(context.Background(), Options{
		Type: TypeS3,
		S3: S3Config{Bucket: bucket, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
			Endpoint: srv.Endpoint, Prefix: "scripts", WrapHTTPClient: wrap},
		Cache: CacheOptions{Dir: t.TempDir(), TTL: ttl, FetchTimeout: 20 * time.Second, Limits: testLimits, Logger: testLogger(t)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := repo.(*Remote)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	return r
}

// TestS3Repository runs the s3 type against a real S3-compatible server, in a versioned bucket (version =
// VersionId) and an unversioned one (version = ETag).
func TestS3Repository(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	c := srv.Client()
	ctx := context.Background()
	for _, versioned := range []bool{true, false} {
		bucket := map[bool]string{true: "versioned", false: "plain"}[versioned]
		t.Run(bucket, func(t *testing.T) {
			srv.CreateBucket(t, bucket, versioned)
			counter := &countingClient{}
			repo := openS3(t, srv, bucket, 0, counter) // TTL 0: every Resolve asks S3
			put1 := putBundle(t, c, bucket, "scripts/hello.tar.gz", scriptBundle(t, "1"), nil)
			want1 := S3Version(aws.ToString(put1.VersionId), aws.ToString(put1.ETag))
			if versioned != !strings.HasPrefix(want1, "etag:") {
				t.Fatalf("version %q for a versioned=%v bucket", want1, versioned)
			}

			first, err := repo.Resolve(ctx, "hello")
			if err != nil {
				t.Fatal(err)
			}
			if first.Version != want1 || !strings.Contains(readScript(t, first), "return 1") {
				t.Fatalf("first: %+v (want version %s)", first, want1)
			}
			// Unchanged: one HEAD, no GET.
			gets := counter.get(http.MethodGet)
			if again, err := repo.Resolve(ctx, "hello"); err != nil || again != first {
				t.Fatalf("again: %+v %v", again, err)
			}
			if counter.get(http.MethodGet) != gets {
				t.Error("an unchanged object was downloaded again")
			}
			// Replaced: the new version, downloaded once.
			put2 := putBundle(t, c, bucket, "scripts/hello.tar.gz", scriptBundle(t, "2"), nil)
			second, err := repo.Resolve(ctx, "hello")
			if err != nil {
				t.Fatal(err)
			}
			if second.Version != S3Version(aws.ToString(put2.VersionId), aws.ToString(put2.ETag)) || second.Version == first.Version ||
				!strings.Contains(readScript(t, second), "return 2") {
				t.Fatalf("second: %+v", second)
			}
			if counter.get(http.MethodGet) != gets+1 {
				t.Errorf("GETs: %d, want %d", counter.get(http.MethodGet), gets+1)
			}

			if _, err := repo.Resolve(ctx, "nope"); !errors.Is(err, ErrNotFound) {
				t.Errorf("unknown script: %v", err)
			}
			// A bundle whose checksum does not match its metadata is refused (the good copy stays).
			putBundle(t, c, bucket, "scripts/hello.tar.gz", scriptBundle(t, "3"), map[string]string{BundleSHA256Metadata: strings.Repeat("0", 64)})
			if got, err := repo.Resolve(ctx, "hello"); err != nil || got != second {
				t.Fatalf("bad checksum: %+v %v", got, err)
			}
			putBundle(t, c, bucket, "scripts/fresh.tar.gz", scriptBundle(t, "3"), map[string]string{BundleSHA256Metadata: strings.Repeat("0", 64)})
			if _, err := repo.Resolve(ctx, "fresh"); !errors.Is(err, ErrInvalidBundle) {
				t.Fatalf("bad checksum without a copy: %v", err)
			}
		})
	}

	t.Run("missing bucket is not a missing script", func(t *testing.T) {
		repo := openS3(t, srv, "no-such-bucket", 0, nil)
		_, err := repo.Resolve(ctx, "hello")
		if err == nil || errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestS3ServesCachedCopyWhileUnreachable stops the server: the cached copy keeps serving.
func TestS3ServesCachedCopyWhileUnreachable(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "scripts", true)
	putBundle(t, srv.Client(), "scripts", "scripts/hello.tar.gz", scriptBundle(t, "1"), nil)
	repo := openS3(t, srv, "scripts", 0, nil)
	first, err := repo.Resolve(context.Background(), "hello")
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	got, err := repo.Resolve(context.Background(), "hello")
	if err != nil || got != first {
		t.Fatalf("with S3 down: %+v %v", got, err)
	}
	if _, err := repo.Resolve(context.Background(), "other"); err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("uncached script with S3 down: %v", err)
	}
}
