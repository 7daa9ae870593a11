//go:build linux

package runner

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// TestJailKeeps: only folders below /tmp, /var/tmp and /dev/shm are bound back into a run's mount
// namespace; the run folder read-write, the rest read-only; one inside another is reached through it.
func TestJailKeeps(t *testing.T) {
	t.Parallel()
	got := jailKeeps(nil, "/tmp/w/scratch-1/run-2", "/tmp/w/scripts/echo", "/usr")
	want := []jailKeep{{Path: "/tmp/w/scripts/echo"}, {Path: "/tmp/w/scratch-1/run-2", RW: true}} // shorter first
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keeps = %+v, want %+v", got, want)
	}
	if got := jailKeeps(nil, "/var/lib/w/run-1", "/srv/scripts/echo", "/opt/python"); len(got) != 0 {
		t.Errorf("nothing below the masked folders, yet keeps %+v", got)
	}
	got = jailKeeps(nil, "/tmp/envs/k/run", "/tmp/envs/k/run/s", "/tmp/envs/k")
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

// TestHiddenPaths: the worker's HOME, its work folder (resolved through its nearest existing folder when
// it does not exist yet) and the extra paths are hidden, links resolved; missing ones, "/", relative ones
// and those already hidden (below /tmp, /var/tmp, /dev/shm or another hidden path) are left out. What a
// run needs below a hidden folder is kept (bound back).
func TestHiddenPaths(t *testing.T) {
	t.Parallel()
	if got := hiddenPaths("/", "relative/work", []string{"/no/such/path", "/tmp/x", "/dev/shm", ""}); len(got) != 0 {
		t.Errorf("hidden %q; want nothing", got)
	}
	got := hiddenPaths("/etc", "/var/lib/no-such-worker/work", []string{"/etc/hostname", "/var/lib"})
	if want := []string{"/etc", "/var/lib"}; !slices.Equal(got, want) {
		t.Errorf("hidden %q; want %q (a path inside another is hidden with it)", got, want)
	}
	base := t.TempDir()
	if err := os.Symlink("/etc", filepath.Join(base, "link")); err != nil {
		t.Fatal(err)
	}
	if p, err := resolveExisting(filepath.Join(base, "link", "no", "such")); err != nil || p != "/etc/no/such" {
		t.Errorf("resolveExisting = %q %v, want /etc/no/such", p, err)
	}
	// The paths do not exist (kept as they are); /srv and /usr are not hidden, so they are not bound back.
	keeps := jailKeeps([]string{"/home/w"}, "/home/w/work/run-1", "/srv/scripts/x", "/home/w/.pyenv/versions/3.12", "/usr")
	want := []jailKeep{{Path: "/home/w/work/run-1", RW: true}, {Path: "/home/w/.pyenv/versions/3.12"}}
	if !reflect.DeepEqual(keeps, want) {
		t.Errorf("keeps %+v, want %+v", keeps, want)
	}
}
