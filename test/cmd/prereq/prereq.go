package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/s3test"
)

// Defaults the test suites use when their variables are not set.
const (
	defaultRabbitMQURL   = "amqp://guest:guest@127.0.0.1:5672/"
	defaultManagementURL = "http://127.0.0.1:15672"
	// The management API's user in the tests that call it (functions/queuedepth, test/e2e).
	managementUser, managementPassword = "guest", "guest"
	rabbitMQPrometheusPort             = "15692"
	// probeTimeout bounds each network check.
	probeTimeout = 3 * time.Second
)

// errMissing is run's error when a prerequisite is missing; the report has been printed.
var errMissing = errors.New("prerequisites missing")

// prerequisite is one thing `make test` needs.
type prerequisite struct {
	// what names it, e.g. "promtool".
	what string
	// neededBy says which tests need it.
	neededBy string
	// fix is the command (or action) that provides it.
	fix string
	// check returns nil when it is present, else why not.
	check func(ctx context.Context) error
}

// env is what the checks read: variables through getenv, programs on getenv("PATH").
type env struct {
	getenv func(string) string
	// sudo prefixes commands that need root ("" when running as root).
	sudo string
}

func (e env) or(name, fallback string) string {
	if v := e.getenv(name); v != "" {
		return v
	}
	return fallback
}

// lookPath finds an executable named name in the PATH of e (not of this process: the checks must see what
// the caller's PATH holds).
func (e env) lookPath(name string) (string, error) {
	if strings.ContainsRune(name, filepath.Separator) {
		return name, isExecutable(name)
	}
	for _, dir := range filepath.SplitList(e.getenv("PATH")) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if isExecutable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not on PATH", name)
}

func isExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: not found", path)
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// prerequisites lists what `make test` needs, in the order the report shows them.
func prerequisites(e env) []prerequisite {
	brokerURL := e.or("RABBITMQ_URL", defaultRabbitMQURL)
	host := "127.0.0.1"
	if u, err := url.Parse(brokerURL); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	mgmt := strings.TrimRight(e.or("RABBITMQ_MANAGEMENT_URL", defaultManagementURL), "/")
	promAddr := e.or("RABBITMQ_PROMETHEUS_ADDR", net.JoinHostPort(host, rabbitMQPrometheusPort))
	python := e.or("SCRIPTS_PYTHON", "python3")
	apt := e.sudo + "apt-get install -y --no-install-recommends "
	return []prerequisite{
		{
			what:     "RabbitMQ at " + redact(brokerURL),
			neededBy: "the integration tests of every module",
			fix: apt + "rabbitmq-server && " + e.sudo + "rabbitmq-server -detached" +
				"   (or set RABBITMQ_URL to a broker that runs; for a refused login, its user and password)",
			check: func(ctx context.Context) error { return dialAMQP(brokerURL) },
		},
		{
			what:     "RabbitMQ's management API at " + mgmt,
			neededBy: "functions/queuedepth, test/e2e (backpressure)",
			fix:      e.sudo + "rabbitmq-plugins enable rabbitmq_management   (or set RABBITMQ_MANAGEMENT_URL)",
			check: func(ctx context.Context) error {
				return getOK(ctx, mgmt+"/api/overview", managementUser, managementPassword)
			},
		},
		{
			what:     "RabbitMQ's Prometheus endpoint at " + promAddr,
			neededBy: "test/observability",
			fix:      e.sudo + "rabbitmq-plugins enable rabbitmq_prometheus   (or set RABBITMQ_PROMETHEUS_ADDR)",
			check:    func(ctx context.Context) error { return getOK(ctx, "http://"+promAddr+"/metrics", "", "") },
		},
		{
			what:     "rabbitmq-server",
			neededBy: "test/faults and local/stack (private RabbitMQ nodes they start and break)",
			fix:      apt + "rabbitmq-server",
			check:    func(context.Context) error { _, err := e.lookPath("rabbitmq-server"); return err },
		},
		{
			what:     "prometheus",
			neededBy: "test/observability",
			fix:      apt + "prometheus",
			check:    func(context.Context) error { _, err := e.lookPath("prometheus"); return err },
		},
		{
			what:     "promtool",
			neededBy: "test/observability",
			fix:      apt + "prometheus",
			check:    func(context.Context) error { _, err := e.lookPath("promtool"); return err },
		},
		{
			what:     "Chromium",
			neededBy: "test/e2e (the /docs page in a headless browser)",
			fix:      apt + "chromium   (or set CHROMIUM to a Chromium or Chrome binary)",
			check:    func(context.Context) error { return e.chromium() },
		},
		{
			what:     python + " with bs4",
			neededBy: "make test-scripts (quotes_scraper)",
			fix: apt + "python3 python3-bs4 (then SCRIPTS_PYTHON=/usr/bin/python3 if " + python + " is another Python), or " +
				python + " -m pip install beautifulsoup4",
			check: func(ctx context.Context) error { return e.pythonWithBS4(ctx, python) },
		},
		{
			what:     "git",
			neededBy: "worker/internal/repository (git script repositories), test/e2e",
			fix:      apt + "git",
			check:    func(context.Context) error { _, err := e.lookPath("git"); return err },
		},
		{
			what:     "a Docker engine",
			neededBy: "make test-containers-ci (test/docker: the images under Docker; part of make test)",
			fix:      apt + "docker.io, then start it: sudo dockerd &   (.ci/run does both)",
			check:    func(ctx context.Context) error { return e.dockerEngine(ctx) },
		},
		{
			what:     "debootstrap",
			neededBy: "make base-images (the base images' stand-ins where no registry answers)",
			fix:      apt + "debootstrap",
			check:    func(context.Context) error { _, err := e.lookPath("debootstrap"); return err },
		},
		{
			what:     "versitygw",
			neededBy: "the S3 script repository tests, test/e2e, test/observability",
			fix:      "make versitygw   (or set VERSITYGW to its path)",
			check:    func(context.Context) error { return e.tool("VERSITYGW", "versitygw") },
		},
		{
			what:     "aws-lambda-rie",
			neededBy: "test/lambda (the Lambda bootstrap under the runtime interface emulator)",
			fix:      "make rie   (or set AWS_LAMBDA_RIE to its path)",
			check:    func(context.Context) error { return e.tool("AWS_LAMBDA_RIE", "aws-lambda-rie") },
		},
	}
}

// dialAMQP opens and closes an AMQP connection, so a refused login shows here with the broker's reason.
func dialAMQP(raw string) error {
	conn, err := amqp.DialConfig(raw, amqp.Config{Dial: amqp.DefaultDial(probeTimeout)})
	if err != nil {
		return err
	}
	return conn.Close()
}

// getOK GETs raw and wants 200.
func getOK(ctx context.Context, raw, user, password string) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return err
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", raw, resp.Status)
	}
	return nil
}

// chromium is found as test/e2e finds it: CHROMIUM, else chromium or chromium-browser on PATH.
func (e env) chromium() error {
	if p := e.getenv("CHROMIUM"); p != "" {
		return isExecutable(p)
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if _, err := e.lookPath(name); err == nil {
			return nil
		}
	}
	return errors.New("neither chromium nor chromium-browser is on PATH")
}

// pythonWithBS4 runs python -c "import bs4" with the caller's PATH.
// dockerEngine asks the docker CLI (DOCKER, default docker) for the engine's version: the CLI alone is not
// enough, the tests need a daemon that answers.
func (e env) dockerEngine(ctx context.Context) error {
	bin, err := e.lookPath(e.or("DOCKER", "docker"))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "version", "--format", "{{.Server.Version}}")
	cmd.Env = append(os.Environ(), "PATH="+e.getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return fmt.Errorf("no Docker engine answers %s: %s", bin, lines[len(lines)-1])
}

func (e env) pythonWithBS4(ctx context.Context, python string) error {
	bin, err := e.lookPath(python)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-c", "import bs4")
	// The whole environment (pyenv's and virtualenvs' shims need theirs), with the caller's PATH.
	cmd.Env = append(os.Environ(), "PATH="+e.getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err == nil {
		return nil
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if last := lines[len(lines)-1]; last != "" {
		return fmt.Errorf("%s cannot import bs4: %s", bin, last)
	}
	return fmt.Errorf("%s cannot import bs4: %w", bin, err)
}

// tool is found as the tests find a tool that make installs: the variable when set, else .tools/bin/<name> in
// the repository root (versitygw for the S3 tests, aws-lambda-rie for test/lambda).
func (e env) tool(variable, name string) error {
	if p := e.getenv(variable); p != "" {
		return isExecutable(p)
	}
	root, err := s3test.RepoRoot()
	if err != nil {
		return err
	}
	return isExecutable(filepath.Join(root, ".tools", "bin", name))
}

// redact hides a URL's password.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// run checks every prerequisite at once and writes the report to out: one line per prerequisite, and for each
// missing one why, who needs it and the command that fixes it. It returns errMissing when any is missing.
func run(ctx context.Context, getenv func(string) string, out io.Writer) error {
	e := env{getenv: getenv}
	if os.Geteuid() != 0 {
		e.sudo = "sudo "
	}
	ps := prerequisites(e)
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() { errs[i] = p.check(ctx) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	missing := 0
	fmt.Fprintln(out, "make test needs:")
	for i, p := range ps {
		if errs[i] == nil {
			fmt.Fprintf(out, "  ok       %s\n", p.what)
			continue
		}
		missing++
		fmt.Fprintf(out, "  MISSING  %s: %v\n", p.what, errs[i])
		fmt.Fprintf(out, "           needed by %s\n", p.neededBy)
		fmt.Fprintf(out, "           fix: %s\n", p.fix)
	}
	if missing == 0 {
		return nil
	}
	fmt.Fprintf(out, "%d of %d prerequisites missing: fix them with the commands above and run make test again\n"+
		"(on Debian/Ubuntu, `bash .ci/run` installs and starts all of them, then runs make test).\n", missing, len(ps))
	return errMissing
}
