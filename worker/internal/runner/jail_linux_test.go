//go:build linux

package runner

import (
	"reflect"
	"testing"
)

// TestJailKeeps: only folders below /tmp, /var/tmp and /dev/shm are bound back into a run's mount
// namespace; the run folder read-write, the rest read-only; one inside another is reached through it.
func TestJailKeeps(t *testing.T) {
	t.Parallel()
	got := jailKeeps("/tmp/w/scratch-1/run-2", "/tmp/w/scripts/echo", "/usr")
	want := []jailKeep{{Path: "/tmp/w/scripts/echo"}, {Path: "/tmp/w/scratch-1/run-2", RW: true}} // shorter first
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keeps = %+v, want %+v", got, want)
	}
	if got := jailKeeps("/var/lib/w/run-1", "/srv/scripts/echo", "/opt/python"); len(got) != 0 {
		t.Errorf("nothing below the masked folders, yet keeps %+v", got)
	}
	got = jailKeeps("/tmp/envs/k/run", "/tmp/envs/k/run/s", "/tmp/envs/k")
	if len(got) != 1 || got[0].Path != "/tmp/envs/k" {
		t.Errorf("nested keeps = %+v, want the outer one only", got)
	}
}

// TestTmpfsSizes: /tmp (and /var/tmp) and /dev/shm get a quarter of the memory limit each.
func TestTmpfsSizes(t *testing.T) {
	t.Parallel()
	if tmp, shm := tmpfsSizes(64 << 20); tmp != 16<<20 || shm != 16<<20 {
		t.Errorf("64 MiB: %d %d", tmp, shm)
	}
	if tmp, shm := tmpfsSizes(0); tmp != DefaultJailTmpfsBytes/4 || shm != DefaultJailTmpfsBytes/4 {
		t.Errorf("no limit: %d %d", tmp, shm)
	}
	if tmp, _ := tmpfsSizes(1 << 20); tmp != 1<<20 {
		t.Errorf("1 MiB: %d, want the 1 MiB floor", tmp)
	}
}
