package stack

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/scrapeplatform/platform/local/stack/stacktest"
	"github.com/scrapeplatform/platform/shared/proctest"
)

// machineBroker is the broker this machine runs for its own use.
const machineBroker = "amqp://guest:guest@127.0.0.1:5672/"

func TestProbeAMQP(t *testing.T) {
	t.Parallel()
	broker := stacktest.ServeAMQP(t, stacktest.Listen(t), stacktest.ConnectionStart)
	httpServer := stacktest.ServeAMQP(t, stacktest.Listen(t), []byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
	otherVersion := stacktest.ServeAMQP(t, stacktest.Listen(t), []byte("AMQP\x00\x01\x00\x00"))
	closed := freeAddr(t)

	tests := []struct {
		addr string
		want error
	}{
		{broker, nil},
		{httpServer, errNotAMQP},
		{otherVersion, errNotAMQP},
		{closed, errNoAnswer},
	}
	for _, tt := range tests {
		err := probeAMQP(t.Context(), tt.addr, false, time.Second)
		if (tt.want == nil && err != nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
			t.Errorf("probe %s = %v, want %v", tt.addr, err, tt.want)
		}
	}
}

func TestParseBrokerURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want brokerTarget
	}{
		{"amqp://guest:guest@127.0.0.1:5672/", brokerTarget{host: "127.0.0.1", port: "5672", addr: "127.0.0.1:5672", user: "guest", pass: "guest", vhost: "/"}},
		{"amqp://localhost", brokerTarget{host: "localhost", port: "5672", addr: "localhost:5672", user: "guest", pass: "guest", vhost: "/"}},
		{"amqps://u:p@mq.example:5671/v1", brokerTarget{host: "mq.example", port: "5671", addr: "mq.example:5671", tls: true, user: "u", pass: "p", vhost: "v1"}},
		{"amqp://u:p@[::1]:5673/%2fv", brokerTarget{host: "::1", port: "5673", addr: "[::1]:5673", user: "u", pass: "p", vhost: "/v"}},
	}
	for _, tt := range tests {
		got, err := parseBrokerURL(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseBrokerURL(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"http://127.0.0.1:5672/", "amqp://[::1", ""} {
		if _, err := parseBrokerURL(bad); err == nil {
			t.Errorf("parseBrokerURL(%q) succeeded", bad)
		}
	}
}

func TestIsLoopbackHost(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST": true, "127.0.0.1": true, "127.1.2.3": true, "::1": true,
		"0.0.0.0": false, "10.0.0.1": false, "broker": false, "rabbitmq.internal": false, "": false,
	} {
		if got := isLoopbackHost(host); got != want {
			t.Errorf("isLoopbackHost(%q) = %v", host, got)
		}
	}
}

func TestEnsureBrokerUsesOneThatAnswers(t *testing.T) {
	t.Parallel()
	if err := probeAMQP(t.Context(), "127.0.0.1:5672", false, time.Second); err != nil {
		t.Fatalf("this test needs a RabbitMQ on 127.0.0.1:5672 (.ci/run starts one): %v", err)
	}
	dataDir := filepath.Join(t.TempDir(), "rabbitmq")
	stop, err := EnsureBroker(t.Context(), machineBroker, dataDir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Errorf("stop = %v", err)
	}
	if _, err := os.Stat(dataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a broker was set up although one answers (%v)", err)
	}
}

func TestEnsureBrokerRefusesANonAMQPServer(t *testing.T) {
	t.Parallel()
	addr := stacktest.ServeAMQP(t, stacktest.Listen(t), []byte("SSH-2.0-OpenSSH_9.6\r\n"))
	_, err := EnsureBroker(t.Context(), "amqp://"+addr+"/", t.TempDir(), testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "is not an AMQP 0-9-1 broker") {
		t.Fatalf("EnsureBroker = %v", err)
	}
}

func TestEnsureBrokerRefusesToStartARemoteOne(t *testing.T) {
	t.Parallel()
	// A loopback address that nothing answers stands in for the remote
	// host: what is tested is the decision, made from the URL's host name.
	_, err := EnsureBrokerWith(t.Context(), BrokerOptions{URL: "amqps://" + freeAddr(t) + "/", DataDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "amqp:// URLs only") {
		t.Errorf("amqps: EnsureBroker = %v", err)
	}
}

// fakeTools puts only the given shell scripts on PATH.
func fakeTools(t *testing.T, scripts map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range scripts {
		// No fork while the script is open for writing: a child forked meanwhile would hold the writable
		// descriptor until its exec, and running the script then fails with "text file busy".
		syscall.ForkLock.RLock()
		err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body), 0o755)
		syscall.ForkLock.RUnlock()
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir)
	return dir
}

func TestEnsureBrokerSaysWhatToInstall(t *testing.T) {
	fakeTools(t, nil)
	addr := freeAddr(t)
	_, err := EnsureBroker(t.Context(), "amqp://guest:guest@"+addr+"/", t.TempDir(), testLogger(t))
	if err == nil {
		t.Fatal("EnsureBroker succeeded without any broker")
	}
	for _, want := range []string{
		"no AMQP broker answers at " + addr,
		"rabbitmq-server is not installed and Docker is not installed",
		"sudo apt-get install rabbitmq-server",
		"brew install rabbitmq",
		"docker compose -f local/compose.yaml up -d rabbitmq",
		"RABBITMQ_URL=amqp://",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}

	// An installed Docker whose engine does not run is named as such.
	fakeTools(t, map[string]string{"docker": "echo 'Cannot connect to the Docker daemon' >&2\nexit 1\n"})
	_, err = EnsureBroker(t.Context(), "amqp://guest:guest@"+addr+"/", t.TempDir(), testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "docker is installed but its engine does not answer") ||
		!strings.Contains(err.Error(), "Cannot connect to the Docker daemon") {
		t.Errorf("EnsureBroker = %v", err)
	}
}

// With Docker and no rabbitmq-server, the compose file's service is started
// and, on stop, stopped. The fake docker records its arguments; its "up"
// makes a fake broker start listening.
func TestEnsureBrokerRunsDockerCompose(t *testing.T) {
	dir := t.TempDir()
	argLog, marker := filepath.Join(dir, "docker.log"), filepath.Join(dir, "up")
	fakeTools(t, map[string]string{"docker": `echo "$@" >> ` + argLog + `
case "$*" in *" up "*) : > ` + marker + ` ;; esac
`})
	compose := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(compose, []byte("services: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	go func() {
		for {
			if _, err := os.Stat(marker); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		stacktest.ServeAMQP(t, ln, stacktest.ConnectionStart)
	}()

	stop, err := EnsureBrokerWith(t.Context(), BrokerOptions{
		URL: "amqp://guest:guest@" + addr + "/", DataDir: dir, ComposeFile: compose,
		ReadyTimeout: 10 * time.Second, Logger: testLogger(t), Policies: []Policy{QueueBound("jobs", 7)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(argLog)
	want := "info\ncompose -f " + compose + " up -d rabbitmq\n" +
		"compose -f " + compose + ` exec -T rabbitmq rabbitmqctl set_policy -p / --apply-to queues --priority 10 jobs-bound ^jobs$ {"max-length":7,"overflow":"reject-publish"}` + "\n" +
		"compose -f " + compose + " stop rabbitmq\n"
	if string(got) != want {
		t.Errorf("docker was run as:\n%s\nwant:\n%s", got, want)
	}
}

// The real thing: a private RabbitMQ node next to the machine's own one,
// reached with a real AMQP client, then stopped without leftovers.
func TestEnsureBrokerStartsAPrivateNode(t *testing.T) {
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		t.Fatal("this test starts a private RabbitMQ node and needs rabbitmq-server installed (apt-get install rabbitmq-server)")
	}
	t.Parallel()
	port := strconv.Itoa(freePortRange(t, 1) + 1)
	url := "amqp://scrape:s3cret@127.0.0.1:" + port + "/scrape"
	dataDir := filepath.Join(t.TempDir(), "rabbitmq")

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	metricsPort := freePortRange(t, 1) + 1
	b, err := RunBroker(ctx, BrokerOptions{URL: url, DataDir: dataDir, Logger: testLogger(t), PrometheusPort: metricsPort,
		Policies: []Policy{QueueBound("ensure-broker-bounded", 2)}})
	if err != nil {
		t.Fatal(err)
	}
	stop := b.Stop
	t.Cleanup(func() { _ = stop() })
	if b.Origin != BrokerPrivate || b.PrometheusAddr != "127.0.0.1:"+strconv.Itoa(metricsPort) {
		t.Errorf("RunBroker = %+v", b)
	}
	// Its rabbitmq_prometheus plugin answers on the port asked for (it may start just after AMQP).
	var metrics string
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if resp, err := http.Get("http://" + b.PrometheusAddr + "/metrics"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if metrics = string(body); resp.StatusCode == http.StatusOK {
				break
			}
		}
	}
	if !strings.Contains(metrics, "rabbitmq_identity_info") {
		t.Errorf("no rabbitmq_prometheus metrics at %s: %.200q", b.PrometheusAddr, metrics)
	}
	node := NodeName(port)
	if pids := processesWith(node); len(pids) == 0 {
		t.Errorf("no process runs node %s", node)
	}
	if names := epmdNames(t); !strings.Contains(names, strings.TrimSuffix(node, "@localhost")) {
		t.Errorf("epmd does not know node %s:\n%s", node, names)
	}

	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("dial the private node: %v", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("ensure-broker-test", true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
	if err != nil {
		t.Fatalf("declare a quorum queue: %v", err)
	}
	if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	var msg amqp.Delivery
	for ok := false; !ok; {
		if msg, ok, err = ch.Get(q.Name, true); err != nil {
			t.Fatal(err)
		}
		if !ok {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if string(msg.Body) != "hello" {
		t.Errorf("got %q", msg.Body)
	}
	// The policy asked for is on the node: its queue takes 2 messages, then refuses publishes (a quorum
	// queue learns it is full from the publish that fills it, so one more may get in).
	if _, err := ch.QueueDeclare("ensure-broker-bounded", true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	var acks []bool
	for range 5 {
		if err := ch.PublishWithContext(ctx, "", "ensure-broker-bounded", false, false, amqp.Publishing{Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		acks = append(acks, (<-confirms).Ack)
	}
	if !acks[0] || !acks[1] || acks[3] || acks[4] {
		t.Errorf("publishes into the bounded queue confirmed as %v, want the first 2 acked and the last 2 nacked", acks)
	}
	conn.Close()

	if err := stop(); err != nil {
		t.Fatalf("stop = %v", err)
	}
	if err := stop(); err != nil {
		t.Errorf("second stop = %v", err)
	}
	// The node's leftovers die, epmd drops the registration and the port
	// closes a moment after stop returns (epmd notices the node's closed
	// connection on its own time): poll.
	var (
		pids    []int
		names   string
		amqpErr error
	)
	for end := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		pids = processesWith(node)
		names = epmdNames(t)
		amqpErr = probeAMQP(t.Context(), "127.0.0.1:"+port, false, time.Second)
		clean := len(pids) == 0 && !strings.Contains(names, strings.TrimSuffix(node, "@localhost")) && errors.Is(amqpErr, errNoAnswer)
		if clean || time.Now().After(end) {
			break
		}
	}
	if len(pids) != 0 {
		t.Errorf("processes of node %s remain: %v", node, pids)
	}
	if strings.Contains(names, strings.TrimSuffix(node, "@localhost")) {
		t.Errorf("node %s is still registered with epmd:\n%s", node, names)
	}
	if !errors.Is(amqpErr, errNoAnswer) {
		t.Errorf("the node's port still answers: %v", amqpErr)
	}
	for _, f := range []string{"home/.erlang.cookie", "rabbitmq.conf", "log/console.log"} {
		if _, err := os.Stat(filepath.Join(dataDir, f)); err != nil {
			t.Errorf("data folder: %v", err)
		}
	}
	// The machine's own node is untouched.
	if err := probeAMQP(t.Context(), "127.0.0.1:5672", false, time.Second); err != nil {
		t.Logf("note: 127.0.0.1:5672 does not answer: %v", err)
	}
}

// processesWith returns the pids of live processes whose command line or
// environment contains s (RabbitMQ passes its node name in the environment).
func processesWith(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		environ, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if (strings.Contains(string(cmdline), s) || strings.Contains(string(environ), s)) && proctest.Alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// epmdNames lists the Erlang nodes registered on this machine.
func epmdNames(t *testing.T) string {
	out, err := exec.Command("epmd", "-names").CombinedOutput()
	if err != nil {
		t.Logf("epmd -names: %v: %s", err, out)
	}
	return string(out)
}
