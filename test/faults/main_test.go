// Package faults is the fault and abuse suite: it breaks the platform on purpose (brokers that restart or
// lose a node, workers killed or stopped mid-job, poison messages, stray replies, full queues, hostile
// scripts and hostile callers) and checks that every caller still gets a clear answer and nothing is lost.
// How long anything took is reported, never asserted.
//
// Everything runs on this machine and on loopback. Faults that disturb RabbitMQ itself (restarts, lost
// cluster nodes, policies, memory alarms) use private nodes that the tests start on free ports with their
// own node names (local/stack.StartNode), never the machine's shared broker; the other tests use the broker
// at RABBITMQ_URL with queues of their own. Every load loop is bounded in count and time.
//
// Each test records what it expected, what it observed and its figures; TestMain prints them as one table
// at the end (and writes it to $FAULTS_REPORT when set).
package faults

import (
	"fmt"
	"github.com/scrapeplatform/platform/test/testkit"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
)

// binDir holds gateway-local and worker, built once for the package (or taken from FAULTS_BIN_DIR).
var binDir string

func TestMain(m *testing.M) {
	code, err := testkit.RunBuilt(m, &binDir, "FAULTS_BIN_DIR", testkit.Gateway, testkit.Worker)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		os.Exit(1)
	}
	printReport()
	os.Exit(code)
}

// row is one line of the report: a fault or abuse case.
type row struct {
	test, name, expected, observed, figures string
}

var (
	reportMu sync.Mutex
	rows     []row
)

// report records a case for the table. observed should say what happened, in words; figures the numbers.
func report(t *testing.T, name, expected, observed, figures string) {
	t.Helper()
	t.Logf("REPORT %s | expected: %s | observed: %s | %s", name, expected, observed, figures)
	reportMu.Lock()
	defer reportMu.Unlock()
	rows = append(rows, row{test: t.Name(), name: name, expected: expected, observed: observed, figures: figures})
}

func printReport() {
	reportMu.Lock()
	defer reportMu.Unlock()
	if len(rows) == 0 {
		return
	}
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].test < rows[j].test })
	var b strings.Builder
	b.WriteString("\n| case | expected | observed | figures |\n| --- | --- | --- | --- |\n")
	for _, r := range rows {
		esc := func(s string) string { return strings.ReplaceAll(s, "|", "\\|") }
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", esc(r.name), esc(r.expected), esc(r.observed), esc(r.figures))
	}
	fmt.Print(b.String())
	if path := os.Getenv("FAULTS_REPORT"); path != "" {
		_ = os.WriteFile(path, []byte(b.String()), 0o644)
	}
}
