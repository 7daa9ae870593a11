package proctest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestOutputLines(t *testing.T) {
	var o Output
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { fmt.Fprintf(&o, "worker-%d msg=started\n", i) })
	}
	wg.Wait()
	if n := o.Count("msg=started"); n != 8 {
		t.Fatalf("Count = %d, want 8", n)
	}
	if line := o.Line("worker-3", "started"); line != "worker-3 msg=started" {
		t.Fatalf("Line = %q", line)
	}
	if line := o.Line("worker-3", "stopped"); line != "" {
		t.Fatalf("Line = %q, want none", line)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		fmt.Fprintln(&o, "gateway msg=ready")
	}()
	if line := o.WaitLine(t, time.Minute, "gateway", "ready"); line != "gateway msg=ready" {
		t.Fatalf("WaitLine = %q", line)
	}
	if n := o.WaitCount(func(l string) bool { return strings.HasPrefix(l, "worker-") }, 8, time.Minute); n != 8 {
		t.Fatalf("WaitCount = %d", n)
	}
}

func TestTail(t *testing.T) {
	if got := Tail("abcdef", 3); got != "def" {
		t.Fatalf("Tail = %q", got)
	}
	if got := Tail("ab", 3); got != "ab" {
		t.Fatalf("Tail = %q", got)
	}
}

func TestAlive(t *testing.T) {
	if !Alive(os.Getpid()) {
		t.Fatal("this process is not alive")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if Alive(cmd.Process.Pid) {
		t.Fatalf("reaped process %d is alive", cmd.Process.Pid)
	}
}

func TestPortBlock(t *testing.T) {
	const low, high = 40000, 40100 // any range does here: PortBlock skips ports in use
	a := PortBlock(t, 3, low, high)
	b := PortBlock(t, 3, low, high)
	for _, base := range []int{a, b} {
		if base+1 < low || base+3 > high {
			t.Fatalf("base %d out of range", base)
		}
	}
	if a+3 >= b+1 && b+3 >= a+1 {
		t.Fatalf("blocks %d and %d overlap", a, b)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(a+1))
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if p := FreePort(t); p <= 0 {
		t.Fatalf("FreePort = %d", p)
	}
}
