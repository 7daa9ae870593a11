// Package e2e runs the platform as a user does: the gateway and workers as separate processes built from
// this tree, a real RabbitMQ, real Python scripts, and plain HTTP from the outside.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/scrapeplatform/platform/test/rabbitmqtest"
	"github.com/scrapeplatform/platform/test/testkit"
)

// binDir holds gateway-local and worker, built once for the whole package (or taken from E2E_BIN_DIR).
var binDir string

func TestMain(m *testing.M) {
	code, err := testkit.RunBuilt(m, &binDir, "E2E_BIN_DIR", testkit.Gateway, testkit.Worker)
	if scrapectlDir != "" { // the scrapectl build of scrapectlPush outlives single tests
		os.RemoveAll(scrapectlDir)
	}
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
