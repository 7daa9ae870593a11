// Package e2e runs the platform as a user does: the gateway and workers as separate processes built from
// this tree, a real RabbitMQ, real Python scripts, and plain HTTP from the outside.
package e2e

import (
	"flag"
	"fmt"
	"github.com/scrapeplatform/platform/test/testkit"
	"os"
	"testing"

	"github.com/scrapeplatform/platform/test/rabbitmqtest"
)

// binDir holds gateway-local and worker, built once for the whole package (or taken from E2E_BIN_DIR).
var binDir string

func TestMain(m *testing.M) {
	code, err := buildAndRun(m)
	if terr := rabbitmqtest.Terminate(); terr != nil {
		fmt.Fprintln(os.Stderr, "e2e: remove the RabbitMQ container:", terr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	// After a full run, every documented answer must have been produced (and checked) at least once.
	if code == 0 && flag.Lookup("test.run").Value.String() == "" {
		code = reportCoverage()
	}
	os.Exit(code)
}

func buildAndRun(m *testing.M) (int, error) {
	if dir := os.Getenv("E2E_BIN_DIR"); dir != "" {
		binDir = dir
		return runTests(m), nil
	}
	dir, err := os.MkdirTemp("", "e2e-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	binDir = dir
	if err := testkit.Build(dir, testkit.Gateway, testkit.Worker); err != nil {
		return 0, err
	}
	return runTests(m), nil
}

// runTests runs the tests, then removes the folders they made that outlive a single test (the scrapectl
// build of scrapectlPush).
func runTests(m *testing.M) int {
	defer func() {
		if scrapectlDir != "" {
			os.RemoveAll(scrapectlDir)
		}
	}()
	return m.Run()
}
