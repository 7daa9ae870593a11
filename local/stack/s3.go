package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// S3Options configures StartS3.
type S3Options struct {
	// Binary is the versitygw executable.
	Binary string
	// Addr is its listen address, e.g. 127.0.0.1:7070.
	Addr string
	// Dir holds the objects: Dir/<bucket>/<key> (versitygw's posix backend).
	Dir string
	// Bucket is created (as a folder) when missing.
	Bucket string
	// Buckets are more buckets created (as folders) when missing: the job store's.
	Buckets []string
	// AccessKey, SecretKey and Region are the credentials and region clients use.
	AccessKey, SecretKey, Region string
	// Output receives its log lines, prefixed "[s3] ".
	Output io.Writer
	// ReadyTimeout bounds the wait for its health endpoint (default 30s).
	ReadyTimeout time.Duration
}

// S3Server is a running versitygw, the S3-compatible server the workers'
// s3 script repository reads from locally.
type S3Server struct {
	*Process
	o        S3Options
	endpoint string
}

// LookVersityGW returns the versitygw binary: explicit when not empty (the
// VERSITYGW variable), else <repoRoot>/.tools/bin/versitygw (`make
// versitygw`), else versitygw on PATH.
func LookVersityGW(explicit, repoRoot string) (string, error) {
	if explicit != "" {
		return explicit, checkExecutable(explicit)
	}
	if p := filepath.Join(repoRoot, ".tools", "bin", "versitygw"); checkExecutable(p) == nil {
		return p, nil
	}
	p, err := exec.LookPath("versitygw")
	if err != nil {
		return "", fmt.Errorf("versitygw (the S3-compatible server) is not installed: run `make versitygw`: %w", err)
	}
	return p, nil
}

// StartS3 runs versitygw with its posix backend on o.Dir as a supervised
// Process and waits until its health endpoint answers. The bucket is a
// folder of o.Dir, so it survives restarts with its objects.
func StartS3(ctx context.Context, o S3Options) (*S3Server, error) {
	if o.Binary == "" || o.Addr == "" || o.Dir == "" || o.Bucket == "" || o.AccessKey == "" || o.SecretKey == "" {
		return nil, errors.New("the S3 server needs a binary, an address, a folder, a bucket and credentials")
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	for _, b := range append([]string{o.Bucket}, o.Buckets...) {
		if err := os.MkdirAll(filepath.Join(dir, b), 0o700); err != nil {
			return nil, fmt.Errorf("S3 data folder: %w", err)
		}
	}
	if err := checkAddrFree("s3", o.Addr); err != nil {
		return nil, err
	}
	args := []string{"--access", o.AccessKey, "--secret", o.SecretKey, "--region", o.Region,
		"--port", o.Addr, "--health", "/health", "--quiet", "posix", dir}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	p, err := StartProcess(context.WithoutCancel(ctx), "s3", o.Binary, args, env, o.Output)
	if err != nil {
		return nil, err
	}
	s := &S3Server{Process: p, o: o, endpoint: "http://" + dialAddr(o.Addr)}
	if err := WaitReady(ctx, p, s.endpoint+"/health", o.ReadyTimeout); err != nil {
		_ = p.Stop(startFailureStopTimeout)
		return nil, err
	}
	return s, nil
}

// Endpoint returns the server's URL, e.g. http://127.0.0.1:7070.
func (s *S3Server) Endpoint() string { return s.endpoint }

// Env returns the worker's (and scrapectl's) variables for this server's
// bucket.
func (s *S3Server) Env() []string {
	return []string{
		"SCRIPT_REPOSITORY_TYPE=s3",
		"S3_BUCKET_NAME=" + s.o.Bucket,
		"S3_PREFIX=scripts/",
		"S3_REGION=" + s.o.Region,
		"S3_ENDPOINT_URL=" + s.endpoint,
		"S3_ACCESS_KEY=" + s.o.AccessKey,
		"S3_SECRET_KEY=" + s.o.SecretKey,
	}
}

// JobEnv returns the gateway's and the workers' variables for a job store in this server's bucket (one of
// S3Options.Buckets).
func (s *S3Server) JobEnv(bucket string) []string {
	return []string{
		"JOB_STORE_BUCKET=" + bucket,
		"S3_REGION=" + s.o.Region,
		"S3_ENDPOINT_URL=" + s.endpoint,
		"S3_ACCESS_KEY=" + s.o.AccessKey,
		"S3_SECRET_KEY=" + s.o.SecretKey,
	}
}

// PublishScripts pushes every script folder of dir (one holding scraper.py)
// to the server with scrapectl, as `make publish-scripts` does for a
// deployed stage, and returns their names.
func (s *S3Server) PublishScripts(ctx context.Context, scrapectl, dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var published []string
	for _, e := range entries {
		folder := filepath.Join(dir, e.Name())
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if _, err := os.Stat(filepath.Join(folder, "scraper.py")); err != nil {
			continue
		}
		cmd := exec.CommandContext(ctx, scrapectl, "scripts", "push", "--progress", "never", folder)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, s.Env()...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return published, fmt.Errorf("scrapectl scripts push %s: %w: %s", e.Name(), err, strings.TrimSpace(string(out)))
		}
		published = append(published, e.Name())
	}
	return published, nil
}
