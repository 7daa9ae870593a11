// Package observability checks the platform's dashboards and alert rules for real: it runs the gateway and
// workers as processes against a real RabbitMQ (whose own rabbitmq_prometheus endpoint is scraped too),
// starts a real Prometheus on them with the alert rules of local/prometheus, sends traffic, evaluates every
// query of every panel in local/grafana/dashboards through Prometheus's HTTP API, and provokes every alert
// until Prometheus reports it firing. promtool checks every configuration and rule file.
//
// The workers read their scripts from an S3-compatible server (versitygw) to which scrapectl published
// them, as deployed.
//
// Needs: RabbitMQ with the rabbitmq_prometheus plugin (.ci/run enables it), Prometheus and promtool
// (Debian's prometheus package; .ci/run installs it), versitygw (`make versitygw`; make test installs it),
// Python 3. Missing pieces fail the tests, never skip.
package observability

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/scrapeplatform/platform/test/rabbitmqtest"
	"github.com/scrapeplatform/platform/test/testkit"
)

// binDir holds gateway-local, worker and scrapectl, built once for the package (or taken from E2E_BIN_DIR).
var binDir string

// repoRoot is the repository root, for local/, scripts/ and the modules.
var repoRoot string

func TestMain(m *testing.M) {
	testkit.StackPorts = [2]int{19000, 21999} // e2e, running alongside, keeps the default range
	code, err := buildAndRun(m)
	if terr := rabbitmqtest.Terminate(); terr != nil {
		fmt.Fprintln(os.Stderr, "observability: remove the RabbitMQ container:", terr)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "observability:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func buildAndRun(m *testing.M) (int, error) {
	root, err := filepath.Abs("../..")
	if err != nil {
		return 0, err
	}
	repoRoot = root
	return testkit.RunBuilt(m, &binDir, "E2E_BIN_DIR", testkit.Gateway, testkit.Worker,
		testkit.Binary{Module: "worker", Pkg: "./cmd/scrapectl", Out: "scrapectl"})
}
