package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/s3test"
	"github.com/scrapeplatform/platform/worker/internal/repository"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

func s3Env(srv *s3test.Server, bucket string) map[string]string {
	env := map[string]string{}
	for _, kv := range srv.Env(bucket) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

var versionLine = regexp.MustCompile(`(?m)^hello: version (\S+) \(s3://scripts/scripts/hello\.tar\.gz`)

// TestPushAndList publishes a script to a real S3-compatible server, lists it, publishes a change, and
// resolves it the way a worker does.
func TestPushAndList(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "scripts", true)
	env := s3Env(srv, "scripts")
	dir := filepath.Join(t.TempDir(), "hello")
	write(t, filepath.Join(dir, "scraper.py"), "def scrape(params):\n    return 1\n")
	write(t, filepath.Join(dir, "requirements.txt"), "# pinned\nrequests==2.32.3 --hash=sha256:abc\nbeautifulsoup4>=4.12 ; python_version >= '3.8'\n")
	write(t, filepath.Join(dir, "manifest.json"), `{"description": "says hello", "timeout": 5}`)
	write(t, filepath.Join(dir, ".env"), "SECRET=1")

	out, errOut, err := runCLI(t, env, "scripts", "push", dir, "--progress", "always")
	if err != nil {
		t.Fatalf("push: %v\n%s", err, errOut)
	}
	m := versionLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no version in %q", out)
	}
	v1 := m[1]
	if !strings.Contains(errOut, "100%") || !strings.Contains(errOut, "left out: .env") || !strings.Contains(errOut, "not pinned") {
		t.Errorf("stderr: %s", errOut)
	}

	out, errOut, err = runCLI(t, env, "scripts", "list")
	if err != nil {
		t.Fatalf("list: %v\n%s", err, errOut)
	}
	if !regexp.MustCompile(`(?m)^hello\s+` + regexp.QuoteMeta(v1) + `\s`).MatchString(out) {
		t.Fatalf("list does not show hello %s:\n%s", v1, out)
	}

	write(t, filepath.Join(dir, "scraper.py"), "def scrape(params):\n    return 2\n")
	out, errOut, err = runCLI(t, env, "scripts", "push", "--progress=never", dir)
	if err != nil {
		t.Fatalf("second push: %v\n%s", err, errOut)
	}
	m = versionLine.FindStringSubmatch(out)
	if m == nil || m[1] == v1 {
		t.Fatalf("second push: %q (first version %s)", out, v1)
	}
	v2 := m[1]
	if out, _, _ := runCLI(t, env, "scripts", "list"); !strings.Contains(out, v2) || strings.Contains(out, v1) {
		t.Fatalf("list after the second push:\n%s", out)
	}

	// What was pushed is what a worker resolves, with the version scrapectl printed.
	repo, err := repository.Open(context.Background(), repository.Options{
		Type: repository.TypeS3,
		S3: repository.S3Config{Bucket: "scripts", Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
			Endpoint: srv.Endpoint, Prefix: "scripts/"},
		Cache: repository.CacheOptions{Dir: t.TempDir(), TTL: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := repo.Resolve(context.Background(), "hello")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(s.Dir, "scraper.py"))
	if s.Version != v2 || !strings.Contains(string(b), "return 2") {
		t.Fatalf("resolved %+v: %s", s, b)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, ".env")); !os.IsNotExist(err) {
		t.Error("a hidden file was published")
	}
}

func TestPushToUnversionedBucketReportsETag(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "plain", false)
	dir := filepath.Join(t.TempDir(), "hello")
	write(t, filepath.Join(dir, "scraper.py"), "def scrape(params):\n    return 1\n")
	env := s3Env(srv, "plain")
	env["S3_PREFIX"] = "team-a" // a trailing slash is added
	out, errOut, err := runCLI(t, env, "scripts", "push", dir)
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	if !strings.Contains(out, "hello: version etag:") || !strings.Contains(out, "s3://plain/team-a/hello.tar.gz") || !strings.Contains(errOut, "not versioned") {
		t.Fatalf("stdout %q stderr %q", out, errOut)
	}
}

func TestCheckRefusesBadFolders(t *testing.T) {
	t.Parallel()
	good := map[string]string{"scraper.py": "def scrape(p):\n    return 1\n"}
	for name, tc := range map[string]struct {
		files map[string]string
		want  []string
	}{
		"no entry point": {files: map[string]string{"other.py": "x"}, want: []string{"no scraper.py"}},
		"pip options": {files: map[string]string{"scraper.py": good["scraper.py"],
			"requirements.txt": "--index-url https://evil.example/simple\n-e git+https://x/y\n-r ../../other.txt\nrequests==1\n"},
			want: []string{"line 1: pip options", "line 2: pip options", "line 3: pip options"}},
		"direct references": {files: map[string]string{"scraper.py": good["scraper.py"],
			"requirements.txt": "pkg @ https://x/pkg.whl\n./local/pkg\nhttps://x/y.tar.gz\nnot a requirement!\n"},
			want: []string{"line 1: URLs", "line 2: URLs", "line 3: URLs", "line 4: not a requirement"}},
		"bad manifest": {files: map[string]string{"scraper.py": good["scraper.py"], "manifest.json": `{"timeout": -1, "color": "red"}`},
			want: []string{"manifest.json"}},
		"several problems at once": {files: map[string]string{"requirements.txt": "-e .\n", "manifest.json": "[]"},
			want: []string{"no scraper.py", "pip options", "manifest.json"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "script")
			for p, c := range tc.files {
				write(t, filepath.Join(dir, p), c)
			}
			_, errOut, err := runCLI(t, nil, "scripts", "check", dir)
			if err == nil {
				t.Fatalf("accepted\n%s", errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q: %v", w, err)
				}
			}
		})
	}

	t.Run("invalid name", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "Bad Name")
		write(t, filepath.Join(dir, "scraper.py"), good["scraper.py"])
		if _, _, err := runCLI(t, nil, "scripts", "check", dir); err == nil || !strings.Contains(err.Error(), "--name") {
			t.Fatalf("err = %v", err)
		}
		if out, _, err := runCLI(t, nil, "scripts", "check", "--name", "good_name", dir); err != nil || !strings.Contains(out, "good_name: ok") {
			t.Fatalf("--name: %q %v", out, err)
		}
	})
	t.Run("symlink", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "linked")
		write(t, filepath.Join(dir, "scraper.py"), good["scraper.py"])
		os.Symlink("/etc/passwd", filepath.Join(dir, "passwd"))
		if _, _, err := runCLI(t, nil, "scripts", "check", dir); err == nil || !strings.Contains(err.Error(), "symbolic link") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		t.Parallel()
		dir := filepath.Join(t.TempDir(), "big")
		write(t, filepath.Join(dir, "scraper.py"), good["scraper.py"])
		write(t, filepath.Join(dir, "data.bin"), strings.Repeat("x", 2<<20))
		if _, _, err := runCLI(t, map[string]string{"SCRIPT_MAX_SIZE_MB": "1"}, "scripts", "check", dir); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "hello")
	write(t, filepath.Join(dir, "scraper.py"), "def scrape(p): return 1\n")
	for _, args := range [][]string{
		{},
		{"scripts"},
		{"scripts", "frobnicate"},
		{"scripts", "push"},
		{"scripts", "push", dir, dir},
		{"scripts", "list", "extra"},
		{"scripts", "push", dir}, // no bucket
		{"scripts", "push", "--no-such-flag", dir},
	} {
		if _, _, err := runCLI(t, nil, args...); !errors.Is(err, errUsage) {
			t.Errorf("%q: err = %v, want a usage error", args, err)
		}
	}
}
