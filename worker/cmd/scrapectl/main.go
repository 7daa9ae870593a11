// Command scrapectl publishes scripts to the S3 script repository and lists what is published.
//
//	scrapectl scripts push [flags] DIR    check a script folder, bundle it and upload it; prints its version
//	scrapectl scripts check [flags] DIR   only check the folder (what push checks first)
//	scrapectl scripts list [flags]        list the published scripts with their versions
//
// It reads the worker's S3_* variables (flags override them). See worker/README.md.
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
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "scrapectl:", err)
	if errors.Is(err, errUsage) {
		os.Exit(2)
	}
	os.Exit(1)
}
