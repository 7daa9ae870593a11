package sysstat

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux platform Go supports.
const clockTicks = 100

// TreeCPUSeconds is the CPU time (user and system, in seconds) that process pid and every process below it
// have used so far, their reaped children's included: read twice, the difference is what the tree used in
// between (a child reaped in between moves its time into its parent's children's time, so the sum stays
// continuous). The admission controller compares it with the CPUs available to tell load the worker's own
// scripts cause from load other processes on the machine cause.
func (s *Sampler) TreeCPUSeconds(pid int) (float64, error) {
	entries, err := os.ReadDir(s.path("/proc"))
	if err != nil {
		return 0, err
	}
	children := map[int][]int{}
	ticks := map[int]float64{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(s.path("/proc"), e.Name(), "stat"))
		if err != nil {
			continue // gone in between
		}
		ppid, t, ok := parseStat(string(b))
		if !ok {
			continue
		}
		children[ppid] = append(children[ppid], p)
		ticks[p] = t
	}
	var sum float64
	seen := map[int]bool{}
	stack := []int{pid}
	for len(stack) > 0 {
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[p] {
			continue
		}
		seen[p] = true
		sum += ticks[p]
		stack = append(stack, children[p]...)
	}
	return sum / clockTicks, nil
}

// parseStat reads the parent pid and utime+stime+cutime+cstime (ticks) of a /proc/<pid>/stat line. The
// command name (field 2) may hold spaces and parentheses, so fields are counted after its last ')'.
func parseStat(line string) (ppid int, ticks float64, ok bool) {
	end := strings.LastIndexByte(line, ')')
	if end < 0 {
		return 0, 0, false
	}
	f := strings.Fields(line[end+1:])
	// f[0] is field 3 (state): ppid is field 4 → f[1]; utime..cstime are fields 14–17 → f[11..14].
	if len(f) < 15 {
		return 0, 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, false
	}
	for _, v := range f[11:15] {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, 0, false
		}
		ticks += n
	}
	return ppid, ticks, true
}
