//go:build containers

// Package docker runs the platform's real images under a real Docker engine: the worker image as Fargate
// runs it (Docker's default capabilities, a read-only root filesystem with a tmpfs work dir, a memory
// limit, the image's own user) behind a gateway container and a RabbitMQ container, and a three-node
// RabbitMQ cluster formed by local/rabbitmq/rabbitmq.conf, the file the compose stack mounts.
//
// The images come from `make base-images images` (make test-containers runs both first). Every container
// sits on a user-defined bridge network of its own test; published ports bind to loopback. Without an
// engine, or without the images, the tests fail: they never skip.
package docker

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/testcontainers/testcontainers-go"
)

// The images `make images` and `make base-images` build.
const (
	workerImage   = "scraping-platform/worker:local"
	gatewayImage  = "scraping-platform/gateway:local"
	rabbitmqImage = "rabbitmq:4.2-management" // local/compose.yaml's; a Debian stand-in where it cannot be pulled
	// The compose stack's other images (TestComposeStack); grafana/grafana is optional.
	scrapectlImage  = "scraping-platform/scrapectl:local"
	versitygwImage  = "versity/versitygw:v1.8.0"
	prometheusImage = "prom/prometheus:v2.53.3"
)

func TestMain(m *testing.M) {
	// The reaper container (testcontainers/ryuk) would be pulled from a registry; every test terminates its
	// own containers and networks instead.
	os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
	// The ports are published on loopback (loopbackPorts); without this, testcontainers takes the
	// machine for a container and dials the bridge's gateway address instead.
	if os.Getenv("TESTCONTAINERS_HOST_OVERRIDE") == "" {
		os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1")
	}
	if err := requireImages(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "test/docker:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// requireImages fails when the engine does not answer or an image is missing.
func requireImages(ctx context.Context) error {
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return fmt.Errorf("no Docker engine: %w", err)
	}
	defer p.Close()
	if err := p.Health(ctx); err != nil {
		return fmt.Errorf("the Docker engine does not answer: %w", err)
	}
	for _, img := range []string{workerImage, gatewayImage, rabbitmqImage, scrapectlImage, versitygwImage, prometheusImage} {
		if _, err := p.Client().ImageInspect(ctx, img); err != nil {
			return fmt.Errorf("image %s: %w (run `make base-images images PREBUILT=1`)", img, err)
		}
	}
	return nil
}
