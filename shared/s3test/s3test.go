// Package s3test runs a real S3-compatible server for tests (the shared module's job store, the worker's S3
// script repository, scrapectl): versitygw with its posix backend, on a free loopback port, storing objects
// in a temporary folder, with bucket versioning available.
//
// The binary is $VERSITYGW, or .tools/bin/versitygw under the repository root (`make versitygw` installs
// it there; `make test` depends on it). When neither exists the test fails with a message saying so: an
// integration test never skips because its server is missing.
package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Server is a running versitygw.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Region    string
	AccessKey string
	SecretKey string
	Root      string // the posix backend's folder: one folder per bucket

	stop func()
}

// Stop stops the server before the test ends (to test an unreachable store).
func (s *Server) Stop() { s.stop() }

// Binary returns the versitygw executable's path, or fails the test saying how to install it.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("VERSITYGW=%s: %v", p, err)
		}
		return p
	}
	root, err := RepoRoot()
	if err == nil {
		p := filepath.Join(root, ".tools", "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatalf("versitygw (the S3-compatible server these tests run against) was not found: run `make versitygw` " +
		"at the repository root, or set VERSITYGW to its path")
	return ""
}

// RepoRoot is the nearest folder above the working directory that holds go.work: the repository, where
// make installs its tools (.tools/bin). The suites and the test tools (bench, prereq) find it so.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory: run it inside the repository")
		}
		dir = parent
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Start runs versitygw until the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	s := &Server{
		Region:    "us-east-1",
		AccessKey: "s3testaccess",
		SecretKey: "s3test-secret-key-0123456789",
		Root:      filepath.Join(dir, "data"),
	}
	versions := filepath.Join(dir, "versions")
	for _, d := range []string{s.Root, versions} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			t.Fatal(err)
		}
		out := &syncBuffer{}
		cmd := exec.Command(bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--region", s.Region,
			"--port", addr, "--quiet", "posix", "--versioning-dir", versions, s.Root)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start versitygw: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if err := waitListening(addr, exited, 15*time.Second); err != nil {
			_ = cmd.Process.Kill()
			lastErr = fmt.Errorf("%w\n%s", err, out.String())
			continue
		}
		var once sync.Once
		s.stop = func() {
			once.Do(func() {
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(5 * time.Second):
					_ = cmd.Process.Kill()
					<-exited
				}
			})
		}
		t.Cleanup(func() {
			s.stop()
			if t.Failed() {
				t.Logf("versitygw output:\n%s", out.String())
			}
		})
		s.Endpoint = "http://" + addr
		return s
	}
	t.Fatalf("versitygw did not start: %v", lastErr)
	return nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitListening(addr string, exited <-chan error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("versitygw exited: %v", err)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("versitygw did not listen on %s within %s", addr, timeout)
}

// Env returns the worker's and scrapectl's S3_* variables (NAME=value) for bucket on this server.
func (s *Server) Env(bucket string) []string {
	return []string{
		"S3_BUCKET_NAME=" + bucket,
		"S3_REGION=" + s.Region,
		"S3_ACCESS_KEY=" + s.AccessKey,
		"S3_SECRET_KEY=" + s.SecretKey,
		"S3_ENDPOINT_URL=" + s.Endpoint,
	}
}

// Getenv returns a getenv function serving the S3_* variables of this server plus extra (NAME=value).
func (s *Server) Getenv(extra ...string) func(string) string {
	env := map[string]string{
		"S3_REGION":       s.Region,
		"S3_ACCESS_KEY":   s.AccessKey,
		"S3_SECRET_KEY":   s.SecretKey,
		"S3_ENDPOINT_URL": s.Endpoint,
	}
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return func(name string) string { return env[name] }
}

// Client returns an S3 client for the server (path-style addressing).
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// CreateBucket creates bucket, with versioning enabled when versioned is set.
func (s *Server) CreateBucket(t testing.TB, bucket string, versioned bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := s.Client()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket %s: %v", bucket, err)
	}
	if versioned {
		_, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
			Bucket:                  aws.String(bucket),
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
		})
		if err != nil {
			t.Fatalf("enable versioning on %s: %v", bucket, err)
		}
	}
}

// List returns the keys of every object in bucket, sorted.
func List(t testing.TB, s *Server, bucket string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var keys []string
	p := s3.NewListObjectsV2Paginator(s.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list %s: %v", bucket, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}
