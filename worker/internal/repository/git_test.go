package repository

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gitRepo is a bare repository plus a working clone that pushes to it, made with the git program.
type gitRepo struct {
	t    *testing.T
	bare string
	work string
	env  []string
}

func newGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("these tests need the git program (the git repository type runs it): install git")
	}
	dir := t.TempDir()
	g := &gitRepo{t: t, bare: filepath.Join(dir, "scripts.git"), work: filepath.Join(dir, "work")}
	g.env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com"}
	g.git(dir, "init", "--bare", "--quiet", "--initial-branch=main", g.bare)
	g.git(dir, "init", "--quiet", "--initial-branch=main", g.work)
	g.git(g.work, "remote", "add", "origin", g.bare)
	return g
}

func (g *gitRepo) git(dir string, args ...string) string {
	g.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = g.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		g.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files (path → content; "" deletes) and pushes; it returns the commit id.
func (g *gitRepo) commit(files map[string]string) string {
	g.t.Helper()
	for p, content := range files {
		full := filepath.Join(g.work, p)
		if content == "" {
			os.Remove(full)
			continue
		}
		write(g.t, full, content)
	}
	g.git(g.work, "add", "-A")
	g.git(g.work, "commit", "--quiet", "-m", "update")
	g.git(g.work, "push", "--quiet", "origin", "main")
	return g.git(g.work, "rev-parse", "HEAD")
}

func openGit(t *testing.T, cfg GitConfig, url string, ttl time.Duration) *Remote {
	t.Helper()
	repo, err := Open(context.Background(), Options{
		Type: TypeGit, URL: url, Git: cfg,
		Cache: CacheOptions{Dir: t.TempDir(), TTL: ttl, FetchTimeout: 20 * time.Second, Limits: testLimits, Logger: testLogger(t)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := repo.(*Remote)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
	return r
}

func TestGitRepository(t *testing.T) {
	t.Parallel()
	g := newGitRepo(t)
	c1 := g.commit(map[string]string{
		"scripts/hello/scraper.py":    "def scrape(p): return 1\n",
		"scripts/hello/lib/util.py":   "X = 1\n",
		"scripts/other/scraper.py":    "def scrape(p): return 'o'\n",
		"scripts/broken/README":       "no entry point",
		"scripts/linked/scraper.py":   "def scrape(p): return 'l'\n",
		"scripts/linked/.gitkeep":     "x",
		"README.md":                   "repo",
		"scripts/not-a-folder.tar.gz": "x",
	})
	repo := openGit(t, GitConfig{Ref: "main", Subdir: "scripts"}, g.bare, time.Hour)
	ctx := context.Background()

	first, err := repo.Resolve(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(first.Version, "git:"+c1+":") || !strings.Contains(readScript(t, first), "return 1") {
		t.Fatalf("first: %+v (commit %s)", first, c1)
	}
	if _, err := os.Stat(filepath.Join(first.Dir, "lib", "util.py")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"missing", "broken", "not-a-folder", "../scripts"} {
		if _, err := repo.Resolve(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Errorf("Resolve(%q) = %v, want ErrNotFound", name, err)
		}
	}

	// A commit that changes the script: served after the TTL or when told, with the new commit.
	c2 := g.commit(map[string]string{"scripts/hello/scraper.py": "def scrape(p): return 2\n"})
	if got, _ := repo.Resolve(ctx, "hello"); got != first {
		t.Fatalf("within the TTL: %+v", got)
	}
	repo.Invalidate("")
	second, err := repo.Resolve(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(second.Version, "git:"+c2+":") || second.Dir == first.Dir || second.Content == first.Content ||
		!strings.Contains(readScript(t, second), "return 2") {
		t.Fatalf("second: %+v (commit %s)", second, c2)
	}

	// A commit that changes only another script: new version (commit), same content and folder.
	c3 := g.commit(map[string]string{"scripts/other/scraper.py": "def scrape(p): return 'o2'\n"})
	repo.Invalidate("")
	third, err := repo.Resolve(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(third.Version, "git:"+c3+":") || third.Dir != second.Dir || third.Content != second.Content ||
		strings.TrimPrefix(third.Version, "git:"+c3) != strings.TrimPrefix(second.Version, "git:"+c2) {
		t.Fatalf("third: %+v, second: %+v", third, second)
	}

	// Deleted: not found after the next fetch.
	g.commit(map[string]string{"scripts/hello/scraper.py": "", "scripts/hello/lib/util.py": ""})
	repo.Invalidate("hello")
	if _, err := repo.Resolve(ctx, "hello"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted: %v", err)
	}
}

func TestGitSymlinksAreRefused(t *testing.T) {
	t.Parallel()
	g := newGitRepo(t)
	write(t, filepath.Join(g.work, "evil", "scraper.py"), "def scrape(p): return 1\n")
	if err := os.Symlink("/etc/passwd", filepath.Join(g.work, "evil", "passwd")); err != nil {
		t.Fatal(err)
	}
	g.commit(nil)
	repo := openGit(t, GitConfig{}, g.bare, time.Hour) // default ref HEAD, scripts at the top
	_, err := repo.Resolve(context.Background(), "evil")
	if !errors.Is(err, ErrInvalidBundle) || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("err = %v", err)
	}
}

func TestGitKeepsCredentialsOutOfErrors(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-t0ken-value"
	url := "http://user:" + secret + "@127.0.0.1:1/scripts.git"
	repo := openGit(t, GitConfig{}, url, time.Hour)
	if strings.Contains(repo.Describe(), secret) {
		t.Fatalf("Describe leaks the password: %s", repo.Describe())
	}
	_, err := repo.Resolve(context.Background(), "hello")
	if err == nil || errors.Is(err, ErrNotFound) {
		t.Fatalf("err = %v", err)
	}
	t.Log(err)
	if strings.Contains(err.Error(), secret) {
		t.Fatalf("error leaks the password: %v", err)
	}
	if got := RedactURL("https://ghp_0123456789abcdefghij@github.com/o/r.git"); strings.Contains(got, "ghp_") {
		t.Errorf("token user name not redacted: %s", got)
	}
}

func TestGitRefValidation(t *testing.T) {
	t.Parallel()
	for _, ref := range []string{"--upload-pack=evil", "a b", "main:other", "x^{}"} {
		_, err := Open(context.Background(), Options{Type: TypeGit, URL: "/nowhere", Git: GitConfig{Ref: ref},
			Cache: CacheOptions{Dir: t.TempDir()}})
		if err == nil {
			t.Errorf("ref %q accepted", ref)
		}
	}
}

func TestAbsoluteGitURL(t *testing.T) {
	t.Parallel()
	wd, _ := os.Getwd()
	for in, want := range map[string]string{
		"https://host/org/r.git":   "https://host/org/r.git",
		"git@github.com:org/r.git": "git@github.com:org/r.git",
		"file:///srv/r.git":        "file:///srv/r.git",
		"/srv/r.git":               "/srv/r.git",
		"repos/r.git":              filepath.Join(wd, "repos/r.git"),
		"./r.git":                  filepath.Join(wd, "r.git"),
	} {
		if got := absoluteGitURL(in); got != want {
			t.Errorf("absoluteGitURL(%q) = %q, want %q", in, got, want)
		}
	}
}
