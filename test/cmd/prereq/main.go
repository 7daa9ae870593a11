// Command prereq checks, before `make test` spends minutes on its suites, that everything they need is on this
// machine: a RabbitMQ at RABBITMQ_URL that accepts the login, its management and Prometheus plugins,
// rabbitmq-server (the fault tests start private nodes), Prometheus and promtool, Chromium, a Python with bs4,
// git, versitygw, aws-lambda-rie, a Docker engine that answers and debootstrap. It lists every missing one at once, each with the command that fixes it,
// and exits 1 when any is missing (2 when it cannot check).
//
// It reads the same variables as the tests: RABBITMQ_URL, RABBITMQ_MANAGEMENT_URL, RABBITMQ_PROMETHEUS_ADDR,
// CHROMIUM, SCRIPTS_PYTHON, VERSITYGW, AWS_LAMBDA_RIE, DOCKER, and PATH to find programs.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Getenv, os.Stdout)
	switch {
	case err == nil:
	case errors.Is(err, errMissing):
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "prereq:", err)
		os.Exit(2)
	}
}
