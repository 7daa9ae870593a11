//go:build linux

package runner

import (
	"fmt"
	"os"
)

// ProtectProcess keeps the calling process's secrets away from the scripts it runs (doc.go, "Secrets"). It
// overwrites the process's original environment block, the memory /proc/<pid>/environ shows, with zero
// bytes, and marks the process non-dumpable, so that processes of the same user can neither read its
// /proc files (environ, mem, maps, fd) nor ptrace it. The Go runtime keeps its own copy of the environment:
// os.Getenv still works, and libraries that read variables later (the AWS SDK) are unaffected.
//
// Call it once, early in the worker's main. Core dumps of the worker are off afterwards.
func ProtectProcess() error {
	scrubErr := scrubEnvironBlock()
	if err := prctl(prSetDumpable, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_DUMPABLE, 0): %w", err)
	}
	if scrubErr != nil {
		return fmt.Errorf("scrub the environment block: %w", scrubErr)
	}
	return nil
}

// scrubEnvironBlock zeroes [env_start, env_end) of this process through /proc/self/mem.
func scrubEnvironBlock() error {
	st, ok := readStat(os.Getpid())
	if !ok || !st.hasEnv {
		return errStat
	}
	mem, err := os.OpenFile("/proc/self/mem", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer mem.Close()
	_, err = mem.WriteAt(make([]byte, st.envEnd-st.envStart), int64(st.envStart))
	return err
}
