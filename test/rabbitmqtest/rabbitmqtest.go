// Package rabbitmqtest gives this module's integration suites (test/e2e, test/observability) a real
// RabbitMQ, through one helper whatever the machine offers:
//
//  1. the broker at RABBITMQ_URL (default amqp://guest:guest@127.0.0.1:5672/) when one answers there — CI
//     (.ci/run starts one) and any machine with rabbitmq-server;
//  2. otherwise, when a Docker engine answers, a rabbitmq:4.2-management container started through
//     testcontainers-go, once per test binary, with the management and Prometheus plugins enabled;
//  3. otherwise the test fails, saying how to get either: an integration test never skips.
//
// The runtime modules' own tests use shared/brokertest, which only knows the first way: testcontainers-go
// is a heavy dependency and stays in this module.
//
// A TestMain that may have started a container calls Terminate after m.Run (testcontainers' reaper would
// remove it too, once the process has gone).
package rabbitmqtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// DefaultURL is the broker tried when RABBITMQ_URL is not set.
const DefaultURL = "amqp://guest:guest@127.0.0.1:5672/"

// Image is the container image used when no broker answers and Docker does; the same as local/compose.yaml's.
const Image = "rabbitmq:4.2-management"

// Where a Broker came from.
const (
	FromURL       = "RABBITMQ_URL"
	FromContainer = "container"
)

// Broker is a RabbitMQ for tests.
type Broker struct {
	// URL is its AMQP URL.
	URL string
	// PrometheusAddr is host:port of its rabbitmq_prometheus endpoint: RABBITMQ_PROMETHEUS_ADDR when set,
	// else the broker's host on port 15692 (.ci/run enables the plugin), or the container's mapped port.
	PrometheusAddr string
	// Origin is FromURL or FromContainer.
	Origin string
}

var (
	mu        sync.Mutex
	resolved  *Broker
	container testcontainers.Container
)

// Get returns the suite's broker, starting a container on the first call when needed (see the package
// comment), and fails t when there is none.
func Get(t testing.TB) Broker {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if resolved == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		b, err := find(ctx, os.Getenv, probeAMQP, dockerAnswers, startContainer)
		if err != nil {
			t.Fatal(err)
		}
		resolved = &b
	}
	return *resolved
}

// URL returns the suite's broker URL (see Get).
func URL(t testing.TB) string {
	t.Helper()
	return Get(t).URL
}

// Terminate removes the container Get started, if any.
func Terminate() error {
	mu.Lock()
	defer mu.Unlock()
	if container == nil {
		return nil
	}
	err := testcontainers.TerminateContainer(container)
	container, resolved = nil, nil
	return err
}

// find is Get's decision, with its probes passed in so that the choice itself is testable without Docker.
func find(ctx context.Context, getenv func(string) string, probe func(ctx context.Context, url string) error,
	docker func(ctx context.Context) error, start func(ctx context.Context) (Broker, error)) (Broker, error) {
	u := getenv("RABBITMQ_URL")
	if u == "" {
		u = DefaultURL
	}
	probeErr := probe(ctx, u)
	if probeErr == nil {
		addr := getenv("RABBITMQ_PROMETHEUS_ADDR")
		if addr == "" {
			host := "127.0.0.1"
			if pu, err := url.Parse(u); err == nil && pu.Hostname() != "" {
				host = pu.Hostname()
			}
			addr = net.JoinHostPort(host, "15692")
		}
		return Broker{URL: u, PrometheusAddr: addr, Origin: FromURL}, nil
	}
	dockerErr := docker(ctx)
	if dockerErr == nil {
		b, err := start(ctx)
		if err != nil {
			return Broker{}, fmt.Errorf("integration tests need RabbitMQ: none answers at %s (%v), and starting %s in Docker failed: %w", redact(u), probeErr, Image, err)
		}
		return b, nil
	}
	return Broker{}, fmt.Errorf(`integration tests need a real RabbitMQ, and there is none:
  - none answers at RABBITMQ_URL=%s: %v
  - no Docker engine answers either (for a container): %v
Start one (Debian/Ubuntu: apt-get install rabbitmq-server && rabbitmq-server -detached; .ci/run does this),
point RABBITMQ_URL at one, or start Docker`, redact(u), probeErr, dockerErr)
}

func probeAMQP(_ context.Context, u string) error {
	conn, err := amqp.DialConfig(u, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return err
	}
	return conn.Close()
}

func dockerAnswers(ctx context.Context) error {
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return err
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return p.Health(ctx)
}

// startContainer runs Image with both plugins and waits until AMQP and the Prometheus endpoint answer.
func startContainer(ctx context.Context) (Broker, error) {
	c, err := testcontainers.Run(ctx, Image,
		testcontainers.WithExposedPorts("5672/tcp", "15692/tcp"),
		testcontainers.WithFiles(testcontainers.ContainerFile{
			Reader:            strings.NewReader("[rabbitmq_management,rabbitmq_prometheus].\n"),
			ContainerFilePath: "/etc/rabbitmq/enabled_plugins",
			FileMode:          0o644,
		}),
		testcontainers.WithWaitStrategyAndDeadline(2*time.Minute,
			wait.ForLog("Server startup complete"),
			wait.ForListeningPort("5672/tcp"),
			wait.ForHTTP("/metrics").WithPort("15692/tcp")),
	)
	if err != nil {
		if c != nil {
			_ = testcontainers.TerminateContainer(c)
		}
		return Broker{}, err
	}
	amqpAddr, err := c.PortEndpoint(ctx, "5672/tcp", "")
	if err == nil {
		var metrics string
		if metrics, err = c.PortEndpoint(ctx, "15692/tcp", ""); err == nil {
			container = c
			return Broker{URL: "amqp://guest:guest@" + amqpAddr + "/", PrometheusAddr: metrics, Origin: FromContainer}, nil
		}
	}
	_ = testcontainers.TerminateContainer(c)
	return Broker{}, errors.Join(errors.New("read the container's ports"), err)
}

func redact(u string) string {
	if pu, err := url.Parse(u); err == nil {
		return pu.Redacted()
	}
	return strconv.Quote(u)
}
