package repository

// The git repository drives the git command-line program rather than go-git (github.com/go-git/go-git/v5):
//
//   - The worker's image already carries an operating-system runtime (Python); git is one more package,
//     while go-git would add some twenty modules (its own SSH, crypto and storage stacks) to the worker.
//   - git is the reference implementation: protocol v2, shallow fetches of one ref, every transport and
//     host, and the same behaviour operators get on their own machines when they debug.
//   - Only four plumbing commands are needed (init, fetch, ls-tree, archive), with stable output formats.
//     `git archive` streams a tar of the script's tree, which goes through the same checked extractor as
//     the S3 and HTTP bundles, so there is one extraction path to get right, not two.
//
// Each command runs with a minimal environment: no system or global git config, no terminal prompts or
// credential helpers, C locale, and the repository URL passed in GIT_CONFIG_* variables rather than on the
// command line, so a token inside it shows up neither in process listings nor in logs (errors quote the
// URL with its password redacted).

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// GitConfig locates the git repository.
type GitConfig struct {
	// URL is anything `git fetch` accepts: https://, ssh://, file:// or a local path. A token in an https
	// URL's user info is kept out of logs and process listings.
	URL string
	// Ref is the branch, tag or commit to serve (default HEAD: the remote's default branch).
	Ref string
	// Subdir is the folder inside the repository that holds one folder per script ("" = the top).
	Subdir string
}

// gitSource serves script NAME as the folder <Subdir>/NAME at the fetched commit of Ref.
type gitSource struct {
	cfg    GitConfig
	git    string // the git executable
	mirror string // a bare repository inside the cache
	env    []string
	// reuse: a fetch younger than this answers every script's check (one fetch serves all scripts).
	reuse time.Duration
	now   func() time.Time

	mu        sync.Mutex // one fetch at a time
	commit    string
	fetchedAt time.Time
}

var hexPattern = regexp.MustCompile(`^[0-9a-f]{40,64}$`)

func newGitSource(cfg GitConfig, cacheDir string, ttl time.Duration, now func() time.Time) (*gitSource, error) {
	if cfg.URL == "" {
		return nil, errors.New("git: a repository URL is required")
	}
	if cfg.Ref == "" {
		cfg.Ref = "HEAD"
	}
	cfg.URL = absoluteGitURL(cfg.URL)
	if strings.HasPrefix(cfg.Ref, "-") || strings.ContainsAny(cfg.Ref, " \t\n:^~?*[\\") {
		return nil, fmt.Errorf("git: %q is not a valid ref", cfg.Ref)
	}
	cfg.Subdir = strings.Trim(filepath.ToSlash(cfg.Subdir), "/")
	if cfg.Subdir != "" {
		if _, _, err := entryPath(cfg.Subdir); err != nil {
			return nil, fmt.Errorf("git: subdirectory %q: %w", cfg.Subdir, err)
		}
	}
	bin, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("git: the git program is needed for SCRIPT_REPOSITORY_TYPE=git: %w", err)
	}
	sum := sha256.Sum256([]byte(cfg.URL))
	g := &gitSource{
		cfg:    cfg,
		git:    bin,
		mirror: filepath.Join(cacheDir, ".git-"+hex.EncodeToString(sum[:8])),
		reuse:  ttl / 2,
		now:    now,
	}
	g.env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + g.mirror, // nothing is read from it: global config is off
		"LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_ASKPASS=true",
		"SSH_ASKPASS=true",
		"GIT_SSH_COMMAND=ssh -o BatchMode=yes",
		"GIT_LITERAL_PATHSPECS=1",
		"GIT_CONFIG_COUNT=2",
		"GIT_CONFIG_KEY_0=remote.origin.url",
		"GIT_CONFIG_VALUE_0=" + cfg.URL,
		"GIT_CONFIG_KEY_1=credential.helper",
		"GIT_CONFIG_VALUE_1=",
	}
	if _, err := os.Stat(filepath.Join(g.mirror, "HEAD")); err != nil {
		_ = os.RemoveAll(g.mirror)
		if _, err := g.run(context.Background(), "init", "--bare", "--quiet", g.mirror); err != nil {
			return nil, err
		}
	}
	return g, nil
}

var scpLike = regexp.MustCompile(`^[^/]*:`)

// absoluteGitURL makes a relative local path absolute: git runs inside the mirror, where a relative path
// would mean something else. URLs (scheme://) and scp-like addresses (host:path) are kept.
func absoluteGitURL(u string) string {
	if strings.Contains(u, "://") || scpLike.MatchString(u) || filepath.IsAbs(u) {
		return u
	}
	if abs, err := filepath.Abs(u); err == nil {
		return abs
	}
	return u
}

func (g *gitSource) describe() string {
	d := "git " + RedactURL(g.cfg.URL) + " " + g.cfg.Ref
	if g.cfg.Subdir != "" {
		d += " " + g.cfg.Subdir + "/"
	}
	return d
}

func (g *gitSource) invalidate() {
	g.mu.Lock()
	g.fetchedAt = time.Time{}
	g.mu.Unlock()
}

// head returns the commit to serve, fetching it when the last fetch is older than reuse.
func (g *gitSource) head(ctx context.Context) (string, time.Time, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.commit != "" && !g.fetchedAt.IsZero() && g.now().Sub(g.fetchedAt) < g.reuse {
		return g.commit, g.fetchedAt, nil
	}
	started := g.now()
	g.removeStaleLocks()
	if _, err := g.run(ctx, "-C", g.mirror, "fetch", "--quiet", "--no-tags", "--no-recurse-submodules",
		"--depth=1", "origin", "+"+g.cfg.Ref+":refs/scrape/served"); err != nil {
		return "", time.Time{}, err
	}
	out, err := g.run(ctx, "-C", g.mirror, "rev-parse", "--verify", "--quiet", "refs/scrape/served^{commit}")
	if err != nil {
		return "", time.Time{}, err
	}
	commit := strings.TrimSpace(string(out))
	if !hexPattern.MatchString(commit) {
		return "", time.Time{}, fmt.Errorf("git rev-parse: unexpected output %q", commit)
	}
	g.commit, g.fetchedAt = commit, started
	return commit, started, nil
}

// removeStaleLocks removes lock files that a git process killed mid-fetch may have left. No other git
// process runs in the mirror: fetches are serialized and the cache folder is locked.
func (g *gitSource) removeStaleLocks() {
	for _, pattern := range []string{"*.lock", "refs/scrape/*.lock"} {
		locks, _ := filepath.Glob(filepath.Join(g.mirror, pattern))
		for _, l := range locks {
			_ = os.Remove(l)
		}
	}
}

// lsTree returns the object id and type of path in treeish, or "" when there is no such entry.
func (g *gitSource) lsTree(ctx context.Context, treeish, path string) (id, typ string, err error) {
	out, err := g.run(ctx, "-C", g.mirror, "ls-tree", "-z", treeish, "--", path)
	if err != nil {
		return "", "", err
	}
	// "<mode> SP <type> SP <object> TAB <path> NUL"
	line, _, _ := bytes.Cut(out, []byte{0})
	meta, p, ok := bytes.Cut(line, []byte{'\t'})
	if !ok || string(p) != path {
		return "", "", nil
	}
	f := strings.Fields(string(meta))
	if len(f) != 3 {
		return "", "", fmt.Errorf("git ls-tree: unexpected output %q", line)
	}
	return f[2], f[1], nil
}

func (g *gitSource) fetch(ctx context.Context, name string, have remoteState) (fetched, error) {
	commit, observed, err := g.head(ctx)
	if err != nil {
		return fetched{}, err
	}
	folder := name
	if g.cfg.Subdir != "" {
		folder = g.cfg.Subdir + "/" + name
	}
	tree, typ, err := g.lsTree(ctx, commit, folder)
	if err != nil {
		return fetched{}, err
	}
	if tree == "" || typ != "tree" {
		return fetched{}, ErrNotFound
	}
	if _, typ, err := g.lsTree(ctx, tree, EntryPoint); err != nil {
		return fetched{}, err
	} else if typ != "blob" {
		return fetched{}, ErrNotFound
	}
	state := remoteState{Version: "git:" + commit + ":" + tree[:12], Validator: tree}
	if have.Validator == tree {
		return fetched{state: state, observed: observed}, nil
	}
	body, err := g.archive(ctx, tree)
	if err != nil {
		return fetched{}, err
	}
	return fetched{state: state, body: body, size: -1, observed: observed}, nil
}

// archive streams `git archive` of tree: a plain tar whose entries are relative to the script's folder.
func (g *gitSource) archive(ctx context.Context, tree string) (io.ReadCloser, error) {
	cmd := g.command(ctx, "-C", g.mirror, "archive", "--format=tar", tree)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedBuffer{b: &stderr, max: 8 << 10}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("git archive: %w", err)
	}
	return &commandReader{ReadCloser: out, cmd: cmd, stderr: &stderr, redact: g.redact}, nil
}

// commandReader is a command's stdout; Close waits for the command and reports its failure.
type commandReader struct {
	io.ReadCloser
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	redact func(string) string
}

func (c *commandReader) Close() error {
	_ = c.ReadCloser.Close()
	if err := c.cmd.Wait(); err != nil {
		return fmt.Errorf("git archive: %w: %s", err, c.redact(strings.TrimSpace(c.stderr.String())))
	}
	return nil
}

// command prepares a git command with the minimal environment. Cancelling ctx sends SIGTERM first, so git
// removes its lock files, and SIGKILL after WaitDelay.
func (g *gitSource) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, g.git, args...)
	cmd.Env = g.env
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs git with the minimal environment and returns its stdout.
func (g *gitSource) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := g.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &limitedBuffer{b: &stdout, max: 1 << 20}
	cmd.Stderr = &limitedBuffer{b: &stderr, max: 8 << 10}
	if err := cmd.Run(); err != nil {
		verb := args[0]
		if verb == "-C" && len(args) > 2 {
			verb = args[2]
		}
		msg := g.redact(strings.TrimSpace(stderr.String()))
		if ctx.Err() != nil {
			return nil, fmt.Errorf("git %s: %w", verb, ctx.Err())
		}
		return nil, fmt.Errorf("git %s: %w: %s", verb, err, msg)
	}
	return stdout.Bytes(), nil
}

// redact removes the repository URL's password from git's messages.
func (g *gitSource) redact(s string) string {
	u, err := url.Parse(g.cfg.URL)
	if err != nil || u.User == nil {
		return s
	}
	s = strings.ReplaceAll(s, g.cfg.URL, RedactURL(g.cfg.URL))
	if p, ok := u.User.Password(); ok && p != "" {
		s = strings.ReplaceAll(s, p, "xxxxx")
	}
	if n := u.User.Username(); n != "" && len(n) >= 16 { // a token used as the user name
		s = strings.ReplaceAll(s, n, "xxxxx")
	}
	return s
}

// RedactURL returns raw with the password (or a long token-like user name) of its user info replaced.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	name := u.User.Username()
	if len(name) >= 16 {
		name = "xxxxx"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(name, "xxxxx")
	} else {
		u.User = url.User(name)
	}
	return u.String()
}

// limitedBuffer keeps the first max bytes written to it and discards the rest.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
