//go:build containers

package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	dockernetwork "github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/scrapeplatform/platform/shared/auth"
)

// jwtSecret signs the test's tokens; the gateway container verifies them with it.
const jwtSecret = "docker-test-jwt-secret-0123456789abcdef"

// newNetwork creates a user-defined bridge for one test, removed when it ends.
func newNetwork(t *testing.T) *testcontainers.DockerNetwork {
	t.Helper()
	nw, err := network.New(t.Context())
	if err != nil {
		t.Fatalf("create network: %v", err)
	}
	t.Cleanup(func() {
		if err := nw.Remove(context.Background()); err != nil {
			t.Logf("remove network: %v", err)
		}
	})
	return nw
}

// run starts a container that is terminated when t ends; on failure the container's log is printed.
func run(t *testing.T, image string, opts ...testcontainers.ContainerCustomizer) *testcontainers.DockerContainer {
	t.Helper()
	c, err := testcontainers.Run(t.Context(), image, opts...)
	t.Cleanup(func() {
		if c == nil {
			return
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", image, containerLog(c))
		}
		if err := testcontainers.TerminateContainer(c); err != nil {
			t.Logf("terminate %s: %v", image, err)
		}
	})
	if err != nil {
		t.Fatalf("start %s: %v", image, err)
	}
	return c
}

func containerLog(c *testcontainers.DockerContainer) string {
	r, err := c.Logs(context.Background())
	if err != nil {
		return err.Error()
	}
	defer r.Close()
	b, _ := io.ReadAll(r)
	return string(b)
}

// loopbackPorts publishes the container's ports on 127.0.0.1 only (Docker's default is every address), each
// on a port the kernel reports free: Docker's own pick (HostPort 0) walks up from 32768 and collides with
// the ephemeral ports other processes of a busy machine hold ("bind: address already in use").
func loopbackPorts(ports ...string) testcontainers.CustomizeRequestOption {
	return func(req *testcontainers.GenericContainerRequest) error {
		if err := testcontainers.WithExposedPorts(ports...)(req); err != nil {
			return err
		}
		bindings := dockernetwork.PortMap{}
		for _, p := range ports {
			l, err := net.Listen("tcp4", "127.0.0.1:0")
			if err != nil {
				return err
			}
			free := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
			l.Close()
			bindings[dockernetwork.MustParsePort(p)] = []dockernetwork.PortBinding{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: free}}
		}
		return testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			if hc.PortBindings == nil {
				hc.PortBindings = dockernetwork.PortMap{}
			}
			for p, b := range bindings {
				hc.PortBindings[p] = b
			}
		})(req)
	}
}

// startBroker starts one RabbitMQ node named rabbit@host, reachable on nw as host.
func startBroker(t *testing.T, nw *testcontainers.DockerNetwork, host string, opts ...testcontainers.ContainerCustomizer) *testcontainers.DockerContainer {
	t.Helper()
	return run(t, rabbitmqImage, append([]testcontainers.ContainerCustomizer{
		network.WithNetwork([]string{host}, nw),
		testcontainers.WithConfigModifier(func(c *container.Config) { c.Hostname = host }),
		loopbackPorts("5672/tcp"),
		testcontainers.WithWaitStrategyAndDeadline(3*time.Minute, wait.ForLog("Server startup complete")),
	}, opts...)...)
}

// startGateway starts the gateway image against the broker at amqpURL and returns its base URL on loopback.
func startGateway(t *testing.T, nw *testcontainers.DockerNetwork, amqpURL string) string {
	t.Helper()
	c := run(t, gatewayImage,
		network.WithNetwork([]string{"gateway"}, nw),
		testcontainers.WithEnv(map[string]string{"RABBITMQ_URL": amqpURL, "JWT_SECRET": jwtSecret, "LOG_LEVEL": "info"}),
		loopbackPorts("8080/tcp"),
		testcontainers.WithWaitStrategyAndDeadline(time.Minute, wait.ForHTTP("/health").WithPort("8080/tcp")),
	)
	endpoint, err := c.PortEndpoint(t.Context(), "8080/tcp", "http")
	if err != nil {
		t.Fatal(err)
	}
	return endpoint
}

// reply is the part of POST /scrape's answer the tests read.
type reply struct {
	code   int
	raw    string
	Status string          `json:"status"`
	Data   json.RawMessage `json:"data"`
	Error  string          `json:"error"`
	Code   string          `json:"error_code"`
}

// testToken is a bearer token the tests' gateways accept.
func testToken(t *testing.T) string {
	t.Helper()
	token, err := auth.IssueHS256([]byte(jwtSecret), auth.Claims{Subject: "docker-test"}, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// postScrape posts one scrape of script to the gateway with the tests' token and, when prefer is set, that
// Prefer header.
func postScrape(t *testing.T, gateway, script string, params map[string]any, timeout int, prefer string) *http.Response {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"script_name": script, "parameters": params, "timeout": timeout})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, gateway+"/scrape", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testToken(t))
	req.Header.Set("Content-Type", "application/json")
	if prefer != "" {
		req.Header.Set("Prefer", prefer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST /scrape %s (Prefer %q): %v", script, prefer, err)
	}
	return resp
}

// scrape posts one scrape to the gateway and decodes the answer.
func scrape(t *testing.T, gateway, script string, params map[string]any, timeout int) reply {
	t.Helper()
	resp := postScrape(t, gateway, script, params, timeout, "")
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{code: resp.StatusCode, raw: string(b)}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("POST /scrape %s: %d %s: %v", script, resp.StatusCode, b, err)
	}
	t.Logf("scrape %s: %d %s %s %s", script, resp.StatusCode, r.Status, r.Code, truncate(string(b), 300))
	return r
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// execOut runs cmd in c and returns its exit code and combined output.
func execOut(t *testing.T, c *testcontainers.DockerContainer, cmd ...string) (int, string) {
	t.Helper()
	code, r, err := c.Exec(t.Context(), cmd, tcexec.Multiplexed())
	if err != nil {
		t.Fatalf("exec %v: %v", cmd, err)
	}
	b, _ := io.ReadAll(r)
	return code, strings.TrimSpace(string(b))
}

// procStatus returns the fields of /proc/<pid>/status inside c.
func procStatus(t *testing.T, c *testcontainers.DockerContainer, pid string) map[string]string {
	t.Helper()
	_, out := execOut(t, c, "cat", "/proc/"+pid+"/status")
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

func waitFor(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func mustJSON(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}

func fmtRow(protection, holds string) string { return fmt.Sprintf("| %s | %s |", protection, holds) }
