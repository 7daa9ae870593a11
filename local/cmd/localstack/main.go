// Command localstack runs the platform on one machine: a RabbitMQ broker (the
// one that answers at RABBITMQ_URL, or a private node it starts), the local
// gateway and a few workers, until Ctrl-C. It is what `make run` runs; see
// local/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// SIGHUP too: closing the terminal stops the stack in order. (The
	// children, in their own process groups, do not get the terminal's
	// signals themselves.)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	default:
		fmt.Fprintln(os.Stderr, "localstack:", err)
		os.Exit(1)
	}
}
