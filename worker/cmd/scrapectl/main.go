// Command scrapectl publishes scripts to the S3 script repository, lists what is published, and runs
// scrapes through the HTTP API.
//
//	scrapectl scripts push [flags] DIR    check a script folder, bundle it and upload it; prints its version
//	scrapectl scripts check [flags] DIR   only check the folder (what push checks first)
//	scrapectl scripts list [flags]        list the published scripts with their versions
//	scrapectl scrape NAME [flags]         submit a scrape, wait for its job, print or save the result
//	scrapectl jobs get|cancel ID          show or cancel a job
//
// The scripts commands read the worker's S3_* variables (flags override them); scrape and jobs read
// SCRAPE_API_URL and SCRAPE_TOKEN (or SCRAPE_AUTH=sigv4: the IAM routes, signed with AWS credentials). See
// worker/README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	interrupts := make(chan os.Signal, 1)
	signal.Notify(interrupts, os.Interrupt, syscall.SIGTERM)
	t := &terminal{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		interactive: isTerminal(os.Stdin) && isTerminal(os.Stderr),
		interrupts:  interrupts,
	}
	err := runTerminal(context.Background(), os.Args[1:], os.Getenv, t)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "scrapectl:", err)
	os.Exit(exitCode(err))
}
