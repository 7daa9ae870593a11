// Package proctest helps tests that start processes: a buffer for their output that is safe for
// concurrent writers and that a test searches line by line (waiting for a line to appear), the tail of a
// long output for a failure message, whether a process still runs, and free loopback ports for the
// processes to listen on.
//
// It is light on purpose (the standard library only), so every module's tests can use it; the suites of
// the test module add what needs the platform's binaries in test/testkit.
package proctest

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/portprobe"
)

// Output keeps the output of the processes a test starts; it is safe for concurrent writers. The zero
// value is ready to use.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

// String returns everything written so far.
func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// Line returns the first line written so far that contains every needle, or "".
func (o *Output) Line(needles ...string) string {
	for _, line := range strings.Split(o.String(), "\n") {
		if containsAll(line, needles) {
			return line
		}
	}
	return ""
}

// Count returns how many lines written so far contain every needle.
func (o *Output) Count(needles ...string) int {
	return o.CountFunc(func(line string) bool { return containsAll(line, needles) })
}

// CountFunc returns how many lines written so far match.
func (o *Output) CountFunc(match func(line string) bool) int {
	n := 0
	for _, line := range strings.Split(o.String(), "\n") {
		if match(line) {
			n++
		}
	}
	return n
}

// WaitLine waits up to timeout for a line that contains every needle and returns it; it fails t, showing
// the end of the output, when none comes.
func (o *Output) WaitLine(t testing.TB, timeout time.Duration, needles ...string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if line := o.Line(needles...); line != "" {
			return line
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line with all of %q; the output ends:\n%s", needles, Tail(o.String(), 4000))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// WaitCount counts the lines that match until there are want of them or wait has passed, and returns the
// last count.
func (o *Output) WaitCount(match func(line string) bool, want int, wait time.Duration) int {
	end := time.Now().Add(wait)
	for {
		n := o.CountFunc(match)
		if n >= want || time.Now().After(end) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func containsAll(line string, needles []string) bool {
	for _, n := range needles {
		if !strings.Contains(line, n) {
			return false
		}
	}
	return true
}

// Tail returns the last n bytes of s (all of s when it is shorter).
func Tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// Alive reports whether the process pid runs: it exists and is neither a zombie (exited, not yet reaped)
// nor dead (Linux /proc states Z and X). Elsewhere than on Linux it reports false.
func Alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] != 'Z' && stat[i+2] != 'X'
}

// WaitGone waits for every pid to stop running (Alive) and marks t failed, going on, for each one still
// running when timeout has passed; the timeout only guards against a hang.
func WaitGone(t testing.TB, timeout time.Duration, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, pid := range pids {
		for Alive(pid) {
			if time.Now().After(deadline) {
				t.Errorf("process %d still runs", pid)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// FreeAddr returns a loopback address whose port was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := portprobe.Pick("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return addr.String()
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePortRange(t, 0)
}

// FreePortRange finds a base port, free a moment ago, such that base+1..base+n are free too. The base
// comes from the kernel's ephemeral range; where a process started later must bind base+1..base+n
// without racing the other tests' connections for them, use PortBlock.
func FreePortRange(t testing.TB, n int) int {
	t.Helper()
	for range 50 {
		addr, err := portprobe.Pick("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		base := addr.Port
		if free(base+1, base+n) {
			return base
		}
	}
	t.Fatal("no free port range")
	return 0
}

var blocks = struct {
	sync.Mutex
	taken map[int]bool
}{taken: map[int]bool{}}

// PortBlock returns base such that base+1..base+n are free loopback ports inside [low, high] that no
// other caller in this test binary was given. Keep [low, high] below the kernel's ephemeral ports (Linux:
// 32768-60999), from which every outgoing connection and ":0" listener takes its port, so nothing running
// alongside takes one between this check and the child's bind; test packages that run at the same time
// pass ranges of their own.
func PortBlock(t testing.TB, n, low, high int) int {
	t.Helper()
	blocks.Lock()
	defer blocks.Unlock()
	for range 200 {
		base := low - 1 + rand.IntN(high-low+2-n)
		ok := true
		for p := base + 1; p <= base+n && ok; p++ {
			ok = !blocks.taken[p]
		}
		if ok && free(base+1, base+n) {
			for p := base + 1; p <= base+n; p++ {
				blocks.taken[p] = true
			}
			return base
		}
	}
	t.Fatalf("no %d free ports in %d-%d", n, low, high)
	return 0
}

// free reports whether every loopback port in [from, to] can be listened on now.
func free(from, to int) bool {
	for p := from; p <= to; p++ {
		if portprobe.Free("127.0.0.1:"+strconv.Itoa(p)) != nil {
			return false
		}
	}
	return true
}

// busyPortTries is how many times RetryOnBusyPort calls its start.
const busyPortTries = 3

// RetryOnBusyPort calls start, which picks its ports (PortBlock, FreeAddr) and starts processes on them,
// again when it fails with an error wrapping EADDRINUSE, up to three times, and returns its last error. A
// port found free can still be busy a moment later, rarely (shared/portprobe says why): start must refuse
// a busy port before it starts anything, as local/stack's Start does, for another try to be safe.
func RetryOnBusyPort(t testing.TB, start func() error) error {
	t.Helper()
	for attempt := 1; ; attempt++ {
		err := start()
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || attempt == busyPortTries {
			return err
		}
		t.Logf("start, attempt %d: %v; taking other ports", attempt, err)
	}
}
