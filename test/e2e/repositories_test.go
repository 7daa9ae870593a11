package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/scrapeplatform/platform/shared/proctest"
)

// The script repositories through the whole system: POST /scrape → gateway → RabbitMQ → a worker that
// fetches the script from S3 (versitygw), git (a bare repository) or HTTP, runs it and replies with its
// version; then the script changes in the repository and the reply shows the new version and data.
// The local repository is what every other test uses.

// greeter is a script whose result says which revision of it ran.
func greeter(revision int) string {
	return fmt.Sprintf("def scrape(params):\n    return {\"greeting\": \"hello \" + params.get(\"name\", \"?\"), \"revision\": %d}\n", revision)
}

// scrapeRevision runs greeter through the stack and returns the revision that ran and its version.
func scrapeRevision(t *testing.T, e *env) (revision int, version string) {
	t.Helper()
	r := e.scrape(t, "greeter", map[string]any{"name": "e2e"}, 15)
	if r.Code != 200 || r.Body["status"] != "completed" {
		t.Fatalf("scrape greeter: %d %s", r.Code, r.Raw)
	}
	data, _ := r.Body["data"].(map[string]any)
	if data["greeting"] != "hello e2e" {
		t.Fatalf("data %v", data)
	}
	version, _ = r.Body["script_version"].(string)
	if version == "" {
		t.Fatalf("no script_version: %s", r.Raw)
	}
	return int(data["revision"].(float64)), version
}

// waitForRevision scrapes until the given revision runs (the worker's cache TTL has passed).
func waitForRevision(t *testing.T, e *env, want int) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rev, version := scrapeRevision(t, e)
		if rev == want {
			return version
		}
		if time.Now().After(deadline) {
			t.Fatalf("revision %d still runs (version %s), want %d", rev, version, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func assertNotFound(t *testing.T, e *env) {
	t.Helper()
	r := e.scrape(t, "no_such_script", nil, 5)
	if r.Code != 200 || r.Body["status"] != "failed" || r.Body["error_code"] != "script_not_found" {
		t.Fatalf("unknown script: %d %s", r.Code, r.Raw)
	}
}

// TestRepositoryS3 publishes with scrapectl to a versioned bucket; both workers (sharing WORKER_WORK_DIR,
// each with its own cache) report the VersionId.
func TestRepositoryS3(t *testing.T) {
	srv := startVersitygw(t)
	srv.createBucket(t, "e2e-scripts")
	dir := filepath.Join(t.TempDir(), "greeter")
	writeFile(t, filepath.Join(dir, "scraper.py"), greeter(1))
	env := srv.env("e2e-scripts")
	v1 := scrapectlPush(t, env, dir)

	e := start(t, 2, append(env, "SCRIPT_REPOSITORY_TYPE=s3", "SCRIPT_CACHE_TTL=1s")...)
	for range 4 {
		rev, version := scrapeRevision(t, e)
		if rev != 1 || version != v1 {
			t.Fatalf("first runs: revision %d version %s, want 1 and %s", rev, version, v1)
		}
	}
	assertNotFound(t, e)

	writeFile(t, filepath.Join(dir, "scraper.py"), greeter(2))
	v2 := scrapectlPush(t, env, dir)
	if v2 == v1 {
		t.Fatalf("push did not make a new version: %s", v2)
	}
	if version := waitForRevision(t, e, 2); version != v2 {
		t.Fatalf("revision 2 reports version %s, want %s", version, v2)
	}
}

// TestRepositoryGit serves scripts/<name>/ from a bare repository at main; a new commit is picked up when
// the worker gets SIGHUP (the TTL is an hour here), and the reply names the new commit.
func TestRepositoryGit(t *testing.T) {
	repo := newBareRepo(t)
	c1 := repo.commit(t, "scripts/greeter/scraper.py", greeter(1))

	e := start(t, 1, "SCRIPT_REPOSITORY_TYPE=git", "SCRIPT_REPOSITORY_URL="+repo.bare, "SCRIPT_REPOSITORY_REF=main",
		"SCRIPT_REPOSITORY_SUBDIR=scripts", "SCRIPT_CACHE_TTL=1h")
	rev, version := scrapeRevision(t, e)
	if rev != 1 || !strings.HasPrefix(version, "git:"+c1+":") {
		t.Fatalf("first run: revision %d version %s, want 1 and commit %s", rev, version, c1)
	}
	assertNotFound(t, e)

	c2 := repo.commit(t, "scripts/greeter/scraper.py", greeter(2))
	if rev, _ := scrapeRevision(t, e); rev != 1 {
		t.Fatalf("revision %d ran before the worker was told", rev)
	}
	if err := e.stack.Processes()[1].Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	e.out.WaitLine(t, 10*time.Second, "SIGHUP")
	// The worker logs the signal before it invalidates its cache, so a scrape right after the line may still
	// be served from the cache. With a TTL of an hour nothing but the SIGHUP makes revision 2 run.
	version = waitForRevision(t, e, 2)
	if !strings.HasPrefix(version, "git:"+c2+":") {
		t.Fatalf("after SIGHUP: revision 2 reports version %s, want commit %s", version, c2)
	}
}

// TestRepositoryHTTP serves bundles with ETags; with SCRIPT_CACHE_TTL=0 every request revalidates, and an
// unchanged script costs a 304.
func TestRepositoryHTTP(t *testing.T) {
	site := &bundleSite{bundles: map[string][]byte{}, etags: map[string]string{}}
	srv := httptest.NewServer(site)
	t.Cleanup(srv.Close)
	site.put(t, "greeter", greeter(1), `"r1"`)

	e := start(t, 1, "SCRIPT_REPOSITORY_TYPE=http", "SCRIPT_REPOSITORY_URL="+srv.URL+"/bundles/", "SCRIPT_CACHE_TTL=0s")
	rev, version := scrapeRevision(t, e)
	if rev != 1 || version != "etag:r1" {
		t.Fatalf("first run: revision %d version %s", rev, version)
	}
	if rev, _ := scrapeRevision(t, e); rev != 1 {
		t.Fatal("revision changed")
	}
	if ok, notModified := site.counts(); ok != 1 || notModified < 1 {
		t.Fatalf("answers: %d × 200, %d × 304; want one download and revalidations", ok, notModified)
	}
	assertNotFound(t, e)

	site.put(t, "greeter", greeter(2), `"r2"`)
	rev, version = scrapeRevision(t, e)
	if rev != 2 || version != "etag:r2" {
		t.Fatalf("after the update: revision %d version %s", rev, version)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// --- S3: versitygw and scrapectl ---

type s3Server struct {
	endpoint, region, access, secret string
}

// startVersitygw runs versitygw (posix backend, versioning on) on a free loopback port until the test
// ends. It is $VERSITYGW or .tools/bin/versitygw (`make versitygw`); without it the test fails.
func startVersitygw(t *testing.T) *s3Server {
	t.Helper()
	bin := os.Getenv("VERSITYGW")
	if bin == "" {
		root, _ := filepath.Abs("../..")
		bin = filepath.Join(root, ".tools", "bin", "versitygw")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("versitygw (the S3-compatible server of this test) not found at %s: run `make versitygw` or set VERSITYGW", bin)
	}
	dir := t.TempDir()
	data, versions := filepath.Join(dir, "data"), filepath.Join(dir, "versions")
	for _, d := range []string{data, versions} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := &s3Server{region: "us-east-1", access: "e2eaccess", secret: "e2e-secret-key-0123456789"}
	addr := proctest.FreeAddr(t)
	out := &proctest.Output{}
	cmd := exec.Command(bin, "--access", s.access, "--secret", s.secret, "--region", s.region, "--port", addr, "--quiet",
		"posix", "--versioning-dir", versions, data)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("versitygw output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not listen on %s:\n%s", addr, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.endpoint = "http://" + addr
	return s
}

func (s *s3Server) env(bucket string) []string {
	return []string{"S3_BUCKET_NAME=" + bucket, "S3_REGION=" + s.region, "S3_ACCESS_KEY=" + s.access,
		"S3_SECRET_KEY=" + s.secret, "S3_ENDPOINT_URL=" + s.endpoint}
}

func (s *s3Server) createBucket(t *testing.T, bucket string) {
	t.Helper()
	c := s3.New(s3.Options{Region: s.region, BaseEndpoint: aws.String(s.endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(s.access, s.secret, "")})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &bucket,
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatalf("enable versioning: %v", err)
	}
}

var (
	scrapectlOnce sync.Once
	scrapectlPath string
	scrapectlErr  error
	// scrapectlDir is the folder scrapectlPush built scrapectl into, if it did; TestMain removes it.
	scrapectlDir string
)

// scrapectlPush publishes dir with the real scrapectl binary and returns the version it printed.
func scrapectlPush(t *testing.T, env []string, dir string) string {
	t.Helper()
	scrapectlOnce.Do(func() {
		scrapectlPath = filepath.Join(binDir, "scrapectl")
		if _, err := os.Stat(scrapectlPath); err == nil {
			return
		}
		out, err := os.MkdirTemp("", "e2e-scrapectl-")
		if err != nil {
			scrapectlErr = err
			return
		}
		scrapectlDir = out
		scrapectlPath = filepath.Join(out, "scrapectl")
		cmd := exec.Command("go", "build", "-o", scrapectlPath, "./cmd/scrapectl")
		cmd.Dir = "../../worker"
		if b, err := cmd.CombinedOutput(); err != nil {
			scrapectlErr = fmt.Errorf("build scrapectl: %v\n%s", err, b)
		}
	})
	if scrapectlErr != nil {
		t.Fatal(scrapectlErr)
	}
	cmd := exec.Command(scrapectlPath, "scripts", "push", dir)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("scrapectl push: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	m := regexp.MustCompile(`(?m)^\S+: version (\S+) `).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("scrapectl printed no version: %q", stdout.String())
	}
	return m[1]
}

// --- git: a bare repository and a working clone ---

type bareRepo struct {
	bare, work string
	env        []string
}

func newBareRepo(t *testing.T) *bareRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("this test needs the git program")
	}
	dir := t.TempDir()
	r := &bareRepo{bare: filepath.Join(dir, "scripts.git"), work: filepath.Join(dir, "work")}
	r.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.com", "GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.com"}
	r.git(t, dir, "init", "--bare", "--quiet", "--initial-branch=main", r.bare)
	r.git(t, dir, "clone", "--quiet", r.bare, r.work)
	r.git(t, r.work, "checkout", "--quiet", "-b", "main")
	return r
}

func (r *bareRepo) git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env = dir, r.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes one file, commits and pushes it; it returns the commit id.
func (r *bareRepo) commit(t *testing.T, path, content string) string {
	t.Helper()
	writeFile(t, filepath.Join(r.work, path), content)
	r.git(t, r.work, "add", "-A")
	r.git(t, r.work, "commit", "--quiet", "-m", "update "+path)
	r.git(t, r.work, "push", "--quiet", "origin", "main")
	return r.git(t, r.work, "rev-parse", "HEAD")
}

// --- HTTP: bundles with ETags ---

type bundleSite struct {
	mu         sync.Mutex
	bundles    map[string][]byte
	etags      map[string]string
	ok, notMod int
}

func (s *bundleSite) put(t *testing.T, name, scraper, etag string) {
	t.Helper()
	var raw bytes.Buffer
	zw := gzip.NewWriter(&raw)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Name: "scraper.py", Mode: 0o644, Size: int64(len(scraper)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(scraper))
	tw.Close()
	zw.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bundles[name], s.etags[name] = raw.Bytes(), etag
}

func (s *bundleSite) counts() (ok, notModified int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok, s.notMod
}

func (s *bundleSite) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name, found := strings.CutSuffix(strings.TrimPrefix(r.URL.Path, "/bundles/"), ".tar.gz")
	data, ok := s.bundles[name]
	if !found || !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("ETag", s.etags[name])
	if r.Header.Get("If-None-Match") == s.etags[name] {
		s.notMod++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	s.ok++
	w.Header().Set("Content-Type", "application/gzip")
	w.Write(data)
}
