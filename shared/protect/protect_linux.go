//go:build linux

package protect

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// Process protects the calling process (see the package documentation). Call it once, early in main.
// Core dumps of the process are off afterwards. Both steps are attempted; the error names those that
// failed.
func Process() error {
	scrubErr := scrubEnvironBlock()
	if err := prctl(prSetDumpable, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	if scrubErr != nil {
		return fmt.Errorf("scrub the environment block: %w", scrubErr)
	}
	return nil
}

// Dumpable reports whether the calling process is dumpable (prctl PR_GET_DUMPABLE), for tests and checks.
func Dumpable() (bool, error) {
	r, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prGetDumpable, 0, 0)
	if errno != 0 {
		return false, errno
	}
	return r != 0, nil
}

const (
	prGetDumpable = 3
	prSetDumpable = 4
)

func prctl(option, arg uintptr) error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, option, arg, 0); errno != 0 {
		return errno
	}
	return nil
}

// scrubEnvironBlock zeroes [env_start, env_end) of this process through /proc/self/mem.
func scrubEnvironBlock() error {
	start, end, err := environBlock()
	if err != nil {
		return err
	}
	mem, err := os.OpenFile("/proc/self/mem", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer mem.Close()
	_, err = mem.WriteAt(make([]byte, end-start), int64(start))
	return err
}

var errStat = errors.New("/proc/self/stat has no environment block bounds")

// environBlock reads env_start and env_end (fields 50 and 51 of proc(5)) from /proc/self/stat.
func environBlock() (start, end uint64, err error) {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, 0, err
	}
	// pid (comm) state ...; comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errStat
	}
	f := bytes.Fields(b[i+1:])
	// Field k of proc(5) is f[k-3].
	if len(f) <= 48 {
		return 0, 0, errStat
	}
	start, err1 := strconv.ParseUint(string(f[47]), 10, 64)
	end, err2 := strconv.ParseUint(string(f[48]), 10, 64)
	if err1 != nil || err2 != nil || end <= start {
		return 0, 0, errStat
	}
	return start, end, nil
}
