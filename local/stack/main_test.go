package stack

import (
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/scrapeplatform/platform/local/stack/stacktest"
	"github.com/scrapeplatform/platform/shared/proctest"
	"github.com/scrapeplatform/platform/shared/testlog"
)

// fakeBinDir holds the stand-in gateway-local and worker built by TestMain.
var fakeBinDir string

func TestMain(m *testing.M) { os.Exit(stacktest.RunWithFakes(m, &fakeBinDir, nil)) }

func testLogger(t *testing.T) *slog.Logger { return testlog.New(t, slog.LevelDebug) }

// Ports handed out by freePortRange: base+1..base+n all lie in
// [freePortsLow, freePortsHigh] (proctest.PortBlock). The range stays below the kernel's ephemeral
// ports (Linux default 32768-60999), from which every outgoing connection and
// every ":0" listener of the tests running alongside takes its port, so none
// of those can take a port between our check and the child's bind. The
// cmd/localstack tests, which run in parallel with these, use ports above
// freePortsHigh.
const (
	freePortsLow  = 10001
	freePortsHigh = 23999
)

// freePortRange returns base such that base+1..base+n are free loopback
// ports not handed to another test of this run.
func freePortRange(t *testing.T, n int) int {
	t.Helper()
	return proctest.PortBlock(t, n, freePortsLow, freePortsHigh)
}

// freeAddr returns a free loopback address.
func freeAddr(t *testing.T) string {
	return "127.0.0.1:" + strconv.Itoa(freePortRange(t, 1)+1)
}

// pidsIn extracts the pids the fakes print ("... pid N").
func pidsIn(output string) []int {
	var pids []int
	for _, m := range regexp.MustCompile(`pid (\d+)`).FindAllStringSubmatch(output, -1) {
		n, _ := strconv.Atoi(m[1])
		pids = append(pids, n)
	}
	return pids
}
