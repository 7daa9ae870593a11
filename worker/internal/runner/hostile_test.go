package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/scripttest"
	"github.com/scrapeplatform/platform/worker/internal/privatedir"
)

// sameUserRunner builds a runner whose scripts run as one non-root user: the test's own when it is not
// root, else sandboxUser (then the interpreter must be one that user can run).
func sameUserRunner(t *testing.T, mode string, user Credential, edit func(*Config)) *Runner {
	t.Helper()
	return newContained(t, mode, func(c *Config) {
		if os.Getuid() == 0 {
			c.RunAs, c.Python = &user, scripttest.SandboxPython(t, int(user.UID), "RUNNER_SANDBOX_PYTHON")
			c.WorkDir = filepath.Join(scripttest.ReachableTempDir(t), "work")
		}
		if edit != nil {
			edit(c)
		}
	})
}

// TestScriptCannotReachIntoAnotherRunner: a hostile script of the same (non-root) user as a warm runner of
// another script can neither read nor write that runner's memory (/proc/<pid>/mem) nor reopen its
// descriptors (/proc/<pid>/fd/N: its request and result pipes), because runners make themselves
// non-dumpable before they import the script. The same script does all of that to a process of its own
// (the control), so the refusals are the runner's protection.
func TestScriptCannotReachIntoAnotherRunner(t *testing.T) {
	t.Parallel()
	for _, mode := range containments(t) {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			r := sameUserRunner(t, mode, sandboxUser, nil)
			t.Cleanup(func() { _ = r.Shutdown(context.Background()) }) // not t.Context(): it is cancelled before cleanups run
			victim := job(t, "warm_state", `{}`, 20*time.Second)
			victim.Warm, victim.Version = true, "v1"
			res := mustRun(t, r, victim)
			var state struct{ PID int }
			if err := json.Unmarshal(res.Data, &state); err != nil || state.PID == 0 {
				t.Fatalf("warm runner: %s (%v)", res.Data, err)
			}
			if !isLive(state.PID) {
				t.Fatalf("the warm runner %d is not alive", state.PID)
			}
			res = mustRun(t, r, job(t, "pries_runner", fmt.Sprintf(`{"pid": %d, "control": true}`, state.PID), 20*time.Second))
			assertPryRefused(t, res, "warm runner")
			// The victim still answers, from the same process.
			res = mustRun(t, r, victim)
			var after struct{ PID, Calls int }
			if err := json.Unmarshal(res.Data, &after); err != nil || after.PID != state.PID || after.Calls != 2 {
				t.Errorf("victim after the attack: %s", res.Data)
			}
		})
	}
}

// assertPryRefused checks what pries_runner (with "control": true) found: its own child wide open (the
// control), and the target's memory and descriptors refused.
func assertPryRefused(t *testing.T, res Result, target string) {
	t.Helper()
	if res.Status != contract.StatusCompleted {
		t.Fatalf("Status = %q, err %+v", res.Status, res.Err)
	}
	var got struct {
		UID     int
		Target  pried
		Control pried
	}
	if err := json.Unmarshal(res.Data, &got); err != nil {
		t.Fatal(err)
	}
	if got.UID == 0 {
		t.Fatal("the hostile script ran as root: the test proves nothing")
	}
	// The control: a dumpable process of the same user is wide open.
	if !strings.HasPrefix(got.Control.MemRead, "ok") || !strings.HasPrefix(got.Control.FDList, "ok") || !anyReopened(got.Control.FDs) {
		t.Fatalf("control: the script could not pry into its own child, so the test proves nothing: %s", res.Data)
	}
	for what, v := range map[string]string{"read /proc/pid/mem": got.Target.MemRead, "write /proc/pid/mem": got.Target.MemWrite,
		"list /proc/pid/fd": got.Target.FDList} {
		if !strings.HasPrefix(v, "PermissionError") {
			t.Errorf("%s of the %s: %s", what, target, v)
		}
	}
	if len(got.Target.FDs) == 0 {
		t.Errorf("no descriptor of the %s was tried: %s", target, res.Data)
	}
	for fd, v := range got.Target.FDs {
		if !strings.HasPrefix(v, "PermissionError") {
			t.Errorf("reopening the %s's fd %s: %s", target, fd, v)
		}
	}
}

type pried struct {
	MemRead  string `json:"mem_read"`
	MemWrite string `json:"mem_write"`
	FDList   string `json:"fd_list"`
	FDs      map[string]string
}

func anyReopened(fds map[string]string) bool {
	for _, v := range fds {
		if strings.Contains(v, "reopened") {
			return true
		}
	}
	return false
}

// TestFileSizeLimit: RLIMIT_FSIZE stops a script's write past MaxFileBytes with a clear error, and leaves
// smaller files alone.
func TestFileSizeLimit(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, func(c *Config) { c.MaxFileBytes = 4 << 20 })
	res := mustRun(t, r, job(t, "writes_big_file", `{"mb": 2}`, 20*time.Second))
	if res.Status != contract.StatusCompleted || string(res.Data) != `{"bytes":2097152}` {
		t.Fatalf("2 MiB under a 4 MiB limit: %q %s %+v", res.Status, res.Data, res.Err)
	}
	res = mustRun(t, r, job(t, "writes_big_file", `{"mb": 8}`, 20*time.Second))
	if res.Status != contract.StatusFailed || res.Err.Code != contract.CodeScriptError ||
		!strings.Contains(res.Err.Message, "File too large") || !strings.Contains(res.Err.Message, "limit of 4 MiB per file, SCRIPT_MAX_FILE_MB") {
		t.Fatalf("8 MiB under a 4 MiB limit: %q %+v", res.Status, res.Err)
	}
}

// TestPlantedBytecodeDoesNotRun: bytecode planted next to a script's sources (__pycache__/*.pyc with
// unchecked hashes, which Python would use whatever the source says, and a bare .pyc without a source)
// never runs, cold or warm; the plant works when the same folder is imported without the runner.
func TestPlantedBytecodeDoesNotRun(t *testing.T) {
	t.Parallel()
	r := newTestRunner(t, nil)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) }) // not t.Context(): it is cancelled before cleanups run
	dir := filepath.Join(scripttest.Dir(t, "imports_helper"), "imports_helper")
	plant := `
import importlib.util, os, py_compile, sys
d = sys.argv[1]
def compile(name, source, target):
    src = os.path.join(d, "planted-" + name + ".py")
    with open(src, "w") as f:
        f.write(source)
    py_compile.compile(src, cfile=target, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH, doraise=True)
    os.remove(src)
compile("scraper", "def scrape(params):\n    return {'scraper': 'planted'}\n", importlib.util.cache_from_source(os.path.join(d, "scraper.py")))
compile("helper", "NAME = 'planted'\n", importlib.util.cache_from_source(os.path.join(d, "helper.py")))
compile("sourceless", "NAME = 'planted'\n", os.path.join(d, "sourceless.pyc"))
`
	if out, err := exec.Command(r.Python(), "-I", "-c", plant, dir).CombinedOutput(); err != nil {
		t.Fatalf("planting bytecode: %v\n%s", err, out)
	}
	// The control: Python itself runs the planted bytecode.
	out, err := exec.Command(r.Python(), "-I", "-B", "-c", "import sys; sys.path.insert(0, sys.argv[1]); import helper, sourceless; print(helper.NAME, sourceless.NAME)", dir).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "planted planted" {
		t.Fatalf("control: the planted bytecode does not run without the runner (%v: %s), so the test proves nothing", err, out)
	}
	want := `{"scraper":"source","helper":"source","sourceless":"ImportError"}`
	for _, warm := range []bool{false, true} {
		j := job(t, "imports_helper", `{}`, 20*time.Second)
		j.ScriptDir, j.Warm, j.Version = dir, warm, "v1"
		res := mustRun(t, r, j)
		if res.Status != contract.StatusCompleted || string(res.Data) != want {
			t.Errorf("warm=%v: %q %s %+v; want %s", warm, res.Status, res.Data, res.Err, want)
		}
	}
}

// TestWorkDirMustBePrivate: a work folder that is a link, that others may write to, or (as root) that
// another user owns is refused with an error that says why; a private one is accepted and its mode set.
func TestWorkDirMustBePrivate(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(t.TempDir(), link); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{open: "writable by group or others", link: "symbolic link"}
	if os.Getuid() == 0 {
		foreign := filepath.Join(base, "foreign")
		if err := os.Mkdir(foreign, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(foreign, int(sandboxUser.UID), int(sandboxUser.GID)); err != nil {
			t.Fatal(err)
		}
		cases[foreign] = "belongs to uid 65534"
	}
	for dir, why := range cases {
		_, err := New(Config{Python: testPython(t), WorkDir: dir, Logger: testLogger(t)})
		if !errors.Is(err, privatedir.ErrNotPrivate) || !strings.Contains(err.Error(), why) {
			t.Errorf("New(WorkDir %s) = %v; want a refusal saying %q", dir, err, why)
		}
	}
	// A folder of the worker's own with a loose mode is fine once closed: 0755 becomes 0700.
	mine := filepath.Join(base, "mine")
	if err := os.Mkdir(mine, 0o755); err != nil {
		t.Fatal(err)
	}
	r := newTestRunner(t, func(c *Config) { c.WorkDir = mine })
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) }) // not t.Context(): it is cancelled before cleanups run
	if fi, err := os.Stat(mine); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("work dir mode = %v (%v), want 0700", fi.Mode().Perm(), err)
	}
}

// TestScratchFolders: each Runner on a WorkDir gets a scratch folder of its own, named after its process;
// Shutdown removes it; a new Runner sweeps the folders of processes that are gone (their lock is free) and
// keeps those of live ones.
func TestScratchFolders(t *testing.T) {
	t.Parallel()
	work := filepath.Join(t.TempDir(), "work")
	a := newTestRunner(t, func(c *Config) { c.WorkDir = work })
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) }) // not t.Context(): it is cancelled before cleanups run
	if res := mustRun(t, a, func() Job { j := job(t, "warm_state", `{}`, 20*time.Second); j.Warm, j.Version = true, "v1"; return j }()); res.Status != contract.StatusCompleted {
		t.Fatalf("warm run: %+v", res.Err)
	}
	// A dead process's folder (lock file, nobody holds it) and one without a lock: both swept.
	dead := filepath.Join(work, "scratch-999999-dead")
	if err := os.MkdirAll(filepath.Join(dead, "run-1", "inner"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dead, lockName), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dead, "run-1"), 0o500); err != nil { // read-only, as a script may leave it
		t.Fatal(err)
	}
	unlocked := filepath.Join(work, "scratch-999998-nolock")
	if err := os.Mkdir(unlocked, 0o700); err != nil {
		t.Fatal(err)
	}
	// A live process's folder before it took its lock (between its MkdirTemp and its flock): kept.
	starting := filepath.Join(work, fmt.Sprintf("scratch-%d-starting", os.Getpid()))
	if err := os.Mkdir(starting, 0o700); err != nil {
		t.Fatal(err)
	}
	b := newTestRunner(t, func(c *Config) { c.WorkDir = work })
	t.Cleanup(func() { _ = b.Shutdown(context.Background()) }) // not t.Context(): it is cancelled before cleanups run
	for _, d := range []string{dead, unlocked} {
		if _, err := os.Lstat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was not swept (%v)", d, err)
		}
	}
	if _, err := os.Stat(starting); err != nil {
		t.Errorf("the folder of a live process that has not locked it yet was swept: %v", err)
	}
	if a.scratch.dir == b.scratch.dir || filepath.Dir(a.scratch.dir) != work ||
		!strings.HasPrefix(filepath.Base(a.scratch.dir), fmt.Sprintf("scratch-%d-", os.Getpid())) {
		t.Fatalf("scratch folders %s and %s; want two of their own in %s named after the process", a.scratch.dir, b.scratch.dir, work)
	}
	if _, err := os.Stat(a.scratch.dir); err != nil {
		t.Fatalf("the live runner's scratch folder was swept: %v", err)
	}
	if err := a.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, err := os.Lstat(a.scratch.dir); return errors.Is(err, os.ErrNotExist) },
		"Shutdown to remove the scratch folder "+a.scratch.dir)
	if _, err := a.Run(t.Context(), job(t, "returns_dict", `{}`, 10*time.Second)); err == nil {
		t.Error("a run after Shutdown succeeded without a scratch folder")
	}
	if _, err := os.Stat(b.scratch.dir); err != nil {
		t.Fatalf("the other runner's scratch folder went with the first: %v", err)
	}
}

// waitFor polls cond until it holds, failing t after a generous bound (this is not a speed assertion).
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// tempUser runs the scripts of TestTempLeftoversAreRemoved: a uid of that test's own, since what belongs
// to it in /tmp, /var/tmp and /dev/shm is removed (nobody, 65534, is shared with other suites).
var tempUser = Credential{UID: 64123, GID: 64123}

// TestTempLeftoversAreRemoved: what a script run as its own user leaves in /tmp, /var/tmp and /dev/shm
// (marks, a nested folder, 50 MiB in /dev/shm) is gone once its run ends and no other process of that user
// runs, so a later script does not see it; while a warm runner of that user lives, its files stay (one
// script's own calls share them), and go when it is shut down.
func TestTempLeftoversAreRemoved(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("removing a script user's leftovers needs scripts run as their own user (SCRIPT_RUN_AS), which needs root; CI runs as root")
	}
	t.Parallel()
	r := sameUserRunner(t, ContainSession, tempUser, nil)
	t.Cleanup(func() { _ = r.Shutdown(context.Background()) }) // not t.Context(): it is cancelled before cleanups run
	name := fmt.Sprintf("runner-test-%d", os.Getpid())
	res := mustRun(t, r, job(t, "leaves_temp_files", fmt.Sprintf(`{"name": %q, "shm_mb": 50}`, name), 60*time.Second))
	if res.Status != contract.StatusCompleted {
		t.Fatalf("Status = %q, err %+v", res.Status, res.Err)
	}
	var left struct{ Left []string }
	if err := json.Unmarshal(res.Data, &left); err != nil || len(left.Left) != 5 {
		t.Fatalf("result %s (%v)", res.Data, err)
	}
	for _, p := range left.Left {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after the run (%v)", p, err)
			_ = os.RemoveAll(p)
		}
	}
	res = mustRun(t, r, job(t, "leaves_temp_files", fmt.Sprintf(`{"name": %q, "read": true}`, name), 20*time.Second))
	if strings.Contains(string(res.Data), "secret of") {
		t.Errorf("a later script saw the marks: %s", res.Data)
	}

	// A warm runner keeps its own files while it lives.
	warm := job(t, "leaves_temp_files", fmt.Sprintf(`{"name": %q, "shm_mb": 1}`, name+"-warm"), 60*time.Second)
	warm.Warm, warm.Version = true, "v1"
	if res := mustRun(t, r, warm); res.Status != contract.StatusCompleted {
		t.Fatalf("warm: %q %+v", res.Status, res.Err)
	}
	mark := "/dev/shm/mark-" + name + "-warm"
	t.Cleanup(func() { _ = os.Remove(mark) })
	if _, err := os.Stat(mark); err != nil {
		t.Errorf("the live warm runner's mark is gone already: %v", err)
	}
	if err := r.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { _, err := os.Lstat(mark); return errors.Is(err, os.ErrNotExist) }, "the warm runner's files to go after Shutdown")
}

// TestTempLeftoversOfOthersStay: files in the shared folders that are not the scripts' user's stay.
func TestTempLeftoversOfOthersStay(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mine := filepath.Join(dir, "mine")
	if err := os.WriteFile(mine, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if n := removeOwnedBy(dir, os.Getuid()+1); n != 0 {
		t.Fatalf("removed %d entries of another user", n)
	}
	if n := removeOwnedBy(dir, os.Getuid()); n != 1 {
		t.Fatalf("removed %d entries, want 1", n)
	}
	if _, err := os.Lstat(mine); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the user's entry stayed")
	}
}
