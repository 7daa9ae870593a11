package testkit

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/local/stack"
	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/brokertest"
	"github.com/scrapeplatform/platform/shared/proctest"
)

// RunBuilt is the body of a suite's TestMain: it builds bins into a temporary folder (or takes the folder
// named by the environment variable binDirEnv, when set, as built already), stores the folder in *binDir,
// runs the tests and removes what it built. The error is a failed build.
func RunBuilt(m *testing.M, binDir *string, binDirEnv string, bins ...Binary) (int, error) {
	if dir := os.Getenv(binDirEnv); dir != "" {
		*binDir = dir
		return m.Run(), nil
	}
	dir, err := os.MkdirTemp("", "suite-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	*binDir = dir
	if err := Build(dir, bins...); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// Queue returns a task queue of the test's own on the broker at amqpURL (prefix and a random suffix),
// deleting first whatever a run before may have left of its topology.
func Queue(t testing.TB, amqpURL, prefix string) string {
	t.Helper()
	queue := brokertest.Name(prefix)
	topo := broker.NewTopology(queue)
	brokertest.DeleteQueues(t, amqpURL, []string{topo.TaskQueue, topo.DeadLetterQueue}, []string{topo.DeadLetterExchange})
	return queue
}

// StackPorts is the range StartStack takes its ports from. Test binaries that run at the same time need
// ranges of their own (go test runs packages in parallel): e2e keeps the default, observability sets another
// in its TestMain. Both stay below Linux's ephemeral ports (32768-60999) and clear of localstack's tests
// (24000-32767), which run in parallel with them; local/stack's tests (another module) never do.
var StackPorts = [2]int{16000, 18999}

// StartStack starts a gateway and workers worker processes from binDir, each with env, on free loopback
// ports, and waits until they are ready. It stops them when the test ends, logging the tail of their
// output if the test failed. The processes write their output to the returned Output.
func StartStack(t testing.TB, binDir string, workers int, env []string) (*stack.Stack, *proctest.Output) {
	t.Helper()
	out := &proctest.Output{}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), time.Minute)
	defer cancel()
	// The gateway takes base+1, worker i base+2+i: ports from a block below the kernel's usual ephemeral range,
	// so no outgoing connection of the tests running alongside takes one before the processes bind it.
	// PortBlock's and stack.Start's checks hold fork off while they listen (shared/portprobe: a child forked
	// then kept a copy of the probing listener until its exec, the likely cause of session 8's "address is
	// not free"); that makes a busy port rare, not impossible. Should one be busy, stack.Start refuses it
	// before it starts anything, so take another block then.
	var s *stack.Stack
	err := proctest.RetryOnBusyPort(t, func() (err error) {
		base := proctest.PortBlock(t, workers+1, StackPorts[0], StackPorts[1])
		s, err = stack.Start(ctx, stack.Options{
			BinDir:                binDir,
			GatewayAddr:           "127.0.0.1:" + strconv.Itoa(base+1),
			Workers:               workers,
			WorkerMetricsBasePort: base + 1,
			Env:                   env,
			Output:                out,
			ReadyTimeout:          30 * time.Second,
		})
		return err
	})
	if err != nil {
		t.Fatalf("start stack: %v\n%s", err, out.String())
	}
	t.Cleanup(func() {
		if err := s.Stop(40 * time.Second); err != nil {
			t.Errorf("stop stack: %v", err)
		}
		if t.Failed() {
			t.Logf("process output:\n%s", proctest.Tail(out.String(), 30000))
		}
	})
	return s, out
}

// RetryWhileInstalling scrapes a script with requirements until the answer is final. Its worker may
// still be building the script's environment when even the longest timeout the gateway accepts has passed
// on a loaded machine: the build goes on for later callers, and the caller is told to retry
// (dependencies_installing, or a 504 when the worker's answer came too late). So does this, for two
// minutes at most (a hang guard). scrape sends one request and returns its HTTP status and error code;
// the caller keeps the last answer.
func RetryWhileInstalling(t testing.TB, script string, scrape func() (code int, errorCode string)) {
	t.Helper()
	start := time.Now()
	for attempt := 1; ; attempt++ {
		code, errorCode := scrape()
		retry := code == 504 || (code == 200 && errorCode == "dependencies_installing")
		if !retry || time.Since(start) > 2*time.Minute {
			if attempt > 1 {
				t.Logf("%s answered after %d attempts, %v", script, attempt, time.Since(start).Round(time.Millisecond))
			}
			return
		}
		t.Logf("%s: attempt %d: %d %s; retrying", script, attempt, code, errorCode)
	}
}
