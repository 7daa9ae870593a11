package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CPU accounting of a run: where the machine's CPU went during the measured period, per request. On a
// machine whose cores the broker, the gateway, the workers, their runners and the callers all share, a
// request's CPU is what bounds the throughput of a script that waits for nothing (trivial), and what the
// other scenarios' latency loses to queueing for a core; unlike requests/s it hardly depends on how busy
// the machine's neighbours are.

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every Linux platform Go supports.
const clockTicks = 100

// procTime is one process's CPU so far (ticks): its own, and its reaped children's.
type procTime struct {
	ppid         int
	comm         string
	self, reaped float64
}

// procTimes is one reading of /proc: the machine's busy time (ticks, every CPU) and every process's.
type procTimes struct {
	busy  float64
	procs map[int]procTime
}

// readProcTimes reads /proc under root ("/" normally; tests use a fake tree).
func readProcTimes(root string) (procTimes, error) {
	stat, err := os.ReadFile(filepath.Join(root, "proc", "stat"))
	if err != nil {
		return procTimes{}, err
	}
	busy, err := parseBusy(string(stat))
	if err != nil {
		return procTimes{}, err
	}
	t := procTimes{busy: busy, procs: map[int]procTime{}}
	entries, err := os.ReadDir(filepath.Join(root, "proc"))
	if err != nil {
		return procTimes{}, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, "proc", e.Name(), "stat"))
		if err != nil {
			continue // gone in between: its time is in its parent's reaped
		}
		if p, ok := parseProcStat(string(b)); ok {
			t.procs[pid] = p
		}
	}
	return t, nil
}

// parseBusy reads the machine's busy ticks (everything but idle and iowait) from /proc/stat's "cpu" line.
func parseBusy(stat string) (float64, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: no cpu line")
	}
	var busy float64
	for i, v := range f[1:] {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		if i != 3 && i != 4 && i < 8 { // not idle, iowait, or guest time (already in user)
			busy += n
		}
	}
	return busy, nil
}

// parseProcStat reads a /proc/<pid>/stat line: the name (field 2, which may hold spaces and parentheses,
// so the other fields are counted after its last ')'), ppid (4), utime+stime (14, 15) and cutime+cstime
// (16, 17).
func parseProcStat(line string) (procTime, bool) {
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return procTime{}, false
	}
	f := strings.Fields(line[end+1:])
	if len(f) < 15 {
		return procTime{}, false
	}
	var n [5]float64
	for i, idx := range []int{1, 11, 12, 13, 14} {
		v, err := strconv.ParseFloat(f[idx], 64)
		if err != nil {
			return procTime{}, false
		}
		n[i] = v
	}
	return procTime{ppid: int(n[0]), comm: line[open+1 : end], self: n[1] + n[2], reaped: n[3] + n[4]}, true
}

// cpuRoles says which processes are which: the broker is every process named brokerComm, the callers
// are this process (with the raw runs' responders and the fetch's page server), the gateway is its process
// and everything below it, the workers are their own processes, and the runners are everything below the
// workers (namespace helpers and interpreters, live or reaped).
type cpuRoles struct {
	gateway, workers []int
	self             int
}

// brokerComm is RabbitMQ's Erlang VM as /proc names it.
const brokerComm = "beam.smp"

// cpuParts are CPU seconds per role (and the machine's, of which other is what no role used).
type cpuParts struct {
	machine, broker, gateway, workers, runners, callers float64
}

func (p cpuParts) other() float64 {
	return p.machine - p.broker - p.gateway - p.workers - p.runners - p.callers
}

// parts is what each role has used so far in t (ticks → seconds); differences of two readings are what
// each used in between (a child reaped in between moved its time into its parent's reaped, so a tree's
// sum stays continuous).
func (t procTimes) parts(r cpuRoles) cpuParts {
	children := map[int][]int{}
	for pid, p := range t.procs {
		children[p.ppid] = append(children[p.ppid], pid)
	}
	tree := func(roots []int) float64 {
		var sum float64
		seen := map[int]bool{}
		stack := append([]int(nil), roots...)
		for len(stack) > 0 {
			pid := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			p, ok := t.procs[pid]
			if seen[pid] || !ok {
				continue
			}
			seen[pid] = true
			sum += p.self + p.reaped
			stack = append(stack, children[pid]...)
		}
		return sum
	}
	var c cpuParts
	c.machine = t.busy
	for _, p := range t.procs {
		if p.comm == brokerComm {
			c.broker += p.self + p.reaped
		}
	}
	c.gateway = tree(r.gateway)
	for _, pid := range r.workers {
		c.workers += t.procs[pid].self
	}
	c.runners = tree(r.workers) - c.workers
	c.callers = t.procs[r.self].self
	for _, f := range []*float64{&c.machine, &c.broker, &c.gateway, &c.workers, &c.runners, &c.callers} {
		*f /= clockTicks
	}
	return c
}

func (p cpuParts) minus(o cpuParts) cpuParts {
	return cpuParts{machine: p.machine - o.machine, broker: p.broker - o.broker, gateway: p.gateway - o.gateway,
		workers: p.workers - o.workers, runners: p.runners - o.runners, callers: p.callers - o.callers}
}

// cpuProbe reads the roles' CPU for drive at the start and the end of the measured period.
type cpuProbe struct {
	roles cpuRoles
	root  string
}

func (p *cpuProbe) read() (cpuParts, error) {
	t, err := readProcTimes(p.root)
	if err != nil {
		return cpuParts{}, err
	}
	return t.parts(p.roles), nil
}

// printCPU writes the CPU per request of every run that has it: the machine's, and each role's share.
func printCPU(out io.Writer, results []result) {
	header := false
	for _, r := range results {
		if r.cpu == nil || r.n == 0 {
			continue
		}
		if !header {
			fmt.Fprintf(out, "\nCPU per request (ms, measured period)\n%-34s %8s %8s %8s %8s %8s %8s %8s %9s\n",
				"run", "machine", "broker", "gateway", "workers", "runners", "bench", "other", "idle")
			header = true
		}
		ms := func(s float64) string { return fmt.Sprintf("%.3f", s*1000/float64(r.n)) }
		c := *r.cpu
		idle := "-"
		if r.cpus > 0 {
			idle = fmt.Sprintf("%.0f%%", 100*max(0, 1-c.machine/(r.elapsed.Seconds()*r.cpus)))
		}
		fmt.Fprintf(out, "%-34s %8s %8s %8s %8s %8s %8s %8s %9s\n", r.name, ms(c.machine), ms(c.broker), ms(c.gateway),
			ms(c.workers), ms(c.runners), ms(c.callers), ms(c.other()), idle)
	}
}
