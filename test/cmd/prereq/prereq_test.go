package main

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// writeExecutable writes a shell script; forks are held off while it is open for writing, so that a child
// forked meanwhile cannot keep it busy ("text file busy") when it is exec'd.
func writeExecutable(t *testing.T, path, script string) {
	t.Helper()
	syscall.ForkLock.RLock()
	err := os.WriteFile(path, []byte("#!/bin/sh\n"+script+"\n"), 0o755)
	syscall.ForkLock.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
}

// fakeTools makes a folder holding stand-ins for the named programs (python3 imports bs4), for a PATH.
func fakeTools(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		writeExecutable(t, filepath.Join(dir, n), "exit 0")
	}
	return dir
}

// brokerURL is the suite's real RabbitMQ (integration tests never mock it).
func brokerURL() string {
	if u := os.Getenv("RABBITMQ_URL"); u != "" {
		return u
	}
	return defaultRabbitMQURL
}

// plugins serves stand-ins for the management API (which wants the tests' guest/guest) and the Prometheus
// endpoint, so the tool checks can be tested whether or not the machine's broker has the plugins.
func plugins(t *testing.T) (managementURL, prometheusAddr string) {
	t.Helper()
	mgmt := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "guest" || p != "guest" || r.URL.Path != "/api/overview" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"rabbitmq_version":"4"}`))
	}))
	t.Cleanup(mgmt.Close)
	prom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("rabbitmq_build_info 1\n"))
	}))
	t.Cleanup(prom.Close)
	u, _ := url.Parse(prom.URL)
	return mgmt.URL, u.Host
}

// completeEnv has every prerequisite: the real broker, plugin stand-ins, and every tool on PATH.
func completeEnv(t *testing.T) map[string]string {
	t.Helper()
	mgmt, prom := plugins(t)
	tools := fakeTools(t, "rabbitmq-server", "prometheus", "promtool", "chromium", "python3", "git", "docker", "debootstrap")
	vgw := filepath.Join(t.TempDir(), "versitygw")
	writeExecutable(t, vgw, "exit 0")
	rie := filepath.Join(t.TempDir(), "aws-lambda-rie")
	writeExecutable(t, rie, "exit 0")
	return map[string]string{
		"RABBITMQ_URL": brokerURL(), "RABBITMQ_MANAGEMENT_URL": mgmt, "RABBITMQ_PROMETHEUS_ADDR": prom,
		"PATH": tools, "VERSITYGW": vgw, "AWS_LAMBDA_RIE": rie, "HOME": t.TempDir(),
	}
}

func check(t *testing.T, vars map[string]string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(t.Context(), func(k string) string { return vars[k] }, &out)
	t.Logf("report:\n%s", out.String())
	return out.String(), err
}

// freeAddr is a loopback address where nothing listens.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestEverythingPresent(t *testing.T) {
	out, err := check(t, completeEnv(t))
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if strings.Contains(out, "MISSING") || strings.Count(out, "  ok ") != 13 {
		t.Errorf("want 13 ok lines and nothing missing:\n%s", out)
	}
}

// A tool missing from PATH is reported with the command that installs it.
func TestToolMissingFromPath(t *testing.T) {
	vars := completeEnv(t)
	vars["PATH"] = fakeTools(t, "rabbitmq-server", "prometheus", "chromium", "python3", "git", "docker", "debootstrap") // no promtool
	out, err := check(t, vars)
	if !errors.Is(err, errMissing) {
		t.Fatalf("run: %v, want errMissing", err)
	}
	for _, want := range []string{
		"MISSING  promtool: promtool is not on PATH",
		"needed by test/observability",
		"fix: apt-get install -y --no-install-recommends prometheus",
		"1 of 13 prerequisites missing",
	} {
		if !strings.Contains(strings.ReplaceAll(out, "sudo ", ""), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Count(out, "MISSING") != 1 {
		t.Errorf("only promtool is missing:\n%s", out)
	}
}

// Everything missing is listed in one report, not one per run.
func TestEverythingMissingAtOnce(t *testing.T) {
	python := filepath.Join(t.TempDir(), "python3")
	writeExecutable(t, python, `echo "ModuleNotFoundError: No module named 'bs4'" >&2; exit 1`)
	vars := map[string]string{
		"RABBITMQ_URL":             "amqp://guest:guest@" + freeAddr(t) + "/",
		"RABBITMQ_MANAGEMENT_URL":  "http://" + freeAddr(t),
		"RABBITMQ_PROMETHEUS_ADDR": freeAddr(t),
		"PATH":                     t.TempDir(),
		"SCRIPTS_PYTHON":           python,
		"VERSITYGW":                filepath.Join(t.TempDir(), "versitygw"),
		"AWS_LAMBDA_RIE":           filepath.Join(t.TempDir(), "aws-lambda-rie"),
	}
	out, err := check(t, vars)
	if !errors.Is(err, errMissing) {
		t.Fatalf("run: %v, want errMissing", err)
	}
	for _, want := range []string{
		"MISSING  RabbitMQ at amqp://guest:xxxxx@",
		"MISSING  RabbitMQ's management API", "rabbitmq-plugins enable rabbitmq_management",
		"MISSING  RabbitMQ's Prometheus endpoint", "rabbitmq-plugins enable rabbitmq_prometheus",
		"MISSING  rabbitmq-server: rabbitmq-server is not on PATH",
		"MISSING  prometheus: prometheus is not on PATH", "MISSING  promtool",
		"MISSING  Chromium", "install -y --no-install-recommends chromium",
		"MISSING  " + python + " with bs4", "No module named 'bs4'", "python3-bs4",
		"MISSING  git", "install -y --no-install-recommends git",
		"MISSING  versitygw", "make versitygw",
		"MISSING  aws-lambda-rie", "make rie",
		"MISSING  a Docker engine", "docker.io",
		"MISSING  debootstrap", "install -y --no-install-recommends debootstrap",
		"13 of 13 prerequisites missing",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// A broker that refuses the login is reported with the broker's reason, not as absent.
func TestBrokerRefusesTheLogin(t *testing.T) {
	vars := completeEnv(t)
	u, err := url.Parse(brokerURL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "not-the-password")
	vars["RABBITMQ_URL"] = u.String()
	out, err := check(t, vars)
	if !errors.Is(err, errMissing) {
		t.Fatalf("run: %v, want errMissing", err)
	}
	if !strings.Contains(out, "MISSING  RabbitMQ at") || !strings.Contains(out, "403") {
		t.Errorf("want the broker's 403 in the report:\n%s", out)
	}
	if strings.Contains(out, "not-the-password") {
		t.Error("the report shows the password")
	}
}

// The program itself, as make runs it: a PATH without git exits 1 and says so.
func TestProgramExitsNonZero(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "prereq")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	vars := completeEnv(t)
	vars["PATH"] = fakeTools(t, "rabbitmq-server", "prometheus", "promtool", "chromium", "python3") // no git
	cmd := exec.Command(bin)
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "MISSING  git: git is not on PATH") {
		t.Errorf("output lacks the missing git:\n%s", out)
	}
}

// A docker CLI without an engine behind it is missing, with the CLI's own reason.
func TestDockerCLIWithoutEngine(t *testing.T) {
	vars := completeEnv(t)
	writeExecutable(t, filepath.Join(vars["PATH"], "docker"), `echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2; exit 1`)
	out, err := check(t, vars)
	if !errors.Is(err, errMissing) {
		t.Fatalf("run: %v, want errMissing", err)
	}
	for _, want := range []string{"MISSING  a Docker engine: no Docker engine answers", "Cannot connect to the Docker daemon", "1 of 13 prerequisites missing"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}
