package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CPU accounting of a run: where the machine's CPU went during the measured period, per request. On a
// machine whose cores the broker, the gateway, the workers, their runners and the callers all share, a
// request's CPU is what bounds the throughput of a script that waits for nothing (trivial), and what the
// other scenarios' latency loses to queueing for a core; unlike requests/s it hardly depends on how busy
// the machine's neighbours are.

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every Linux platform Go supports.
const clockTicks = 100

// procTime is one process's CPU so far (ticks, its threads' included) and what tells it apart from a
// later process with the same pid (its start time).
type procTime struct {
	ppid  int
	comm  string
	self  float64
	start string
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
			continue // gone in between
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
// so the other fields are counted after its last ')'), ppid (4), utime+stime (14, 15) and starttime (22).
func parseProcStat(line string) (procTime, bool) {
	open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if open < 0 || end < open {
		return procTime{}, false
	}
	f := strings.Fields(line[end+1:])
	if len(f) < 20 {
		return procTime{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	utime, err2 := strconv.ParseFloat(f[11], 64)
	stime, err3 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return procTime{}, false
	}
	return procTime{ppid: ppid, comm: line[open+1 : end], self: utime + stime, start: f[19]}, true
}

// cpuRoles says which processes are which: the broker is every process named brokerComm, the callers
// are this process (with the raw runs' responders and the fetch's page server), the gateway is its process
// and everything below it, the workers are their own processes, and the runners are everything below the
// workers (namespace helpers and interpreters).
type cpuRoles struct {
	gateway, workers []int
	self             int
}

// brokerComm is RabbitMQ's Erlang VM as /proc names it.
const brokerComm = "beam.smp"

type role int

const (
	noRole role = iota
	roleBroker
	roleGateway
	roleWorkers
	roleRunners
	roleCallers
)

// roles gives every process of t that has a role its role.
func (t procTimes) roles(r cpuRoles) map[int]role {
	children := map[int][]int{}
	for pid, p := range t.procs {
		children[p.ppid] = append(children[p.ppid], pid)
	}
	out := map[int]role{}
	mark := func(roots []int, root, below role) {
		stack := append([]int(nil), roots...)
		for len(stack) > 0 {
			pid := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if _, ok := t.procs[pid]; !ok || out[pid] != noRole {
				continue
			}
			out[pid] = below
			if slices.Contains(roots, pid) {
				out[pid] = root
			}
			stack = append(stack, children[pid]...)
		}
	}
	mark(r.gateway, roleGateway, roleGateway)
	mark(r.workers, roleWorkers, roleRunners)
	if _, ok := t.procs[r.self]; ok {
		out[r.self] = roleCallers
	}
	for pid, p := range t.procs {
		if p.comm == brokerComm {
			out[pid] = roleBroker
		}
	}
	return out
}

// cpuParts are CPU seconds per role (and the machine's, of which other is what no role used).
type cpuParts struct {
	machine, broker, gateway, workers, runners, callers float64
}

func (p cpuParts) other() float64 {
	return p.machine - p.broker - p.gateway - p.workers - p.runners - p.callers
}

// cpuTracker adds up, over readings of /proc taken through a period, the CPU each role's processes used:
// a process's own time from its first reading (or from 0, when it started during the period) to its
// last. A child's time is not taken from its parent's reaped-children times: the kernel does not always
// hand those on (a runner's PID namespace torn down with its init lost most of its runner's time here), so
// a process that starts and ends between two readings goes uncounted (in other).
type cpuTracker struct {
	roles cpuRoles
	first procTimes
	last  procTimes
	seen  map[string]*tracked
}

type tracked struct {
	role        role
	first, last float64
}

func procKey(pid int, p procTime) string { return strconv.Itoa(pid) + "/" + p.start }

// add takes a reading.
func (c *cpuTracker) add(t procTimes) {
	if c.seen == nil {
		c.seen, c.first = map[string]*tracked{}, t
	}
	c.last = t
	roles := t.roles(c.roles)
	for pid, p := range t.procs {
		k := procKey(pid, p)
		if tr := c.seen[k]; tr != nil {
			tr.last = p.self
			continue
		}
		r := roles[pid]
		if r == noRole {
			continue
		}
		var first float64 // started during the period
		if f, ok := c.first.procs[pid]; ok && procKey(pid, f) == k {
			first = f.self
		}
		c.seen[k] = &tracked{role: r, first: first, last: p.self}
	}
}

// parts is what each role used between the first reading and the last, in seconds.
func (c *cpuTracker) parts() cpuParts {
	var ticks [roleCallers + 1]float64
	for _, tr := range c.seen {
		ticks[tr.role] += tr.last - tr.first
	}
	return cpuParts{machine: (c.last.busy - c.first.busy) / clockTicks, broker: ticks[roleBroker] / clockTicks,
		gateway: ticks[roleGateway] / clockTicks, workers: ticks[roleWorkers] / clockTicks,
		runners: ticks[roleRunners] / clockTicks, callers: ticks[roleCallers] / clockTicks}
}

// cpuProbe reads the roles' CPU for drive through the measured period.
type cpuProbe struct {
	roles cpuRoles
	root  string
	// every is the period of the readings (default cpuEvery).
	every time.Duration
}

// cpuEvery is how often the probe reads /proc: a process that lives less goes uncounted; a reading costs
// this process about a millisecond of CPU.
const cpuEvery = 250 * time.Millisecond

// measure reads /proc from now until end and returns what each role used in between.
func (p *cpuProbe) measure(ctx context.Context, end time.Time) (cpuParts, error) {
	every := cmp.Or(p.every, cpuEvery)
	c := &cpuTracker{roles: p.roles}
	for {
		t, err := readProcTimes(p.root)
		wait := time.Until(end)
		switch {
		case err == nil:
			c.add(t)
		case c.seen == nil || wait <= 0:
			return cpuParts{}, err // the first or the last reading: nothing to measure from or to
		}
		if wait <= 0 {
			return c.parts(), nil
		}
		select {
		case <-ctx.Done():
			return cpuParts{}, ctx.Err()
		case <-time.After(min(wait, every)):
		}
	}
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
