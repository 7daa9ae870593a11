//go:build linux

package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
)

// probeAnswer is what the fork_probe fixture returns: the process that imported the script and the one that
// ran the call (numbers of the run's own PID namespace, when it has one).
type probeAnswer struct {
	ImportedIn     int      `json:"imported_in"`
	ImportedInHost int      `json:"imported_in_host"`
	PID            int      `json:"pid"`
	PPID           int      `json:"ppid"`
	SID            int      `json:"sid"`
	Dumpable       int      `json:"dumpable"`
	SigchldDefault bool     `json:"sigchld_default"`
	Folders        []string `json:"folders"` // working folder, HOME, TMPDIR, tempfile.gettempdir()
	Random         float64  `json:"random"`
}

// forkModes are the containments forked runners are tested under: a session, a PID namespace and (as root)
// the namespaces of ContainNamespaces.
func forkModes(t *testing.T) []string {
	modes := containments(t)
	if syscall.Geteuid() == 0 {
		modes = append(modes, ContainNamespaces)
	}
	return modes
}

func newForkRunner(t *testing.T, mode string, edit func(*Config)) *Runner {
	t.Helper()
	var r *Runner
	if mode == ContainNamespaces {
		r = namespacedRunner(t, hostileEnv{}, edit)
	} else {
		r = newContained(t, mode, edit)
		t.Cleanup(func() { _ = r.Shutdown(context.Background()) }) // not t.Context(): it is cancelled before cleanups run
	}
	return r
}

func probeJob(t *testing.T, params string) Job {
	j := job(t, "fork_probe", params, 20*time.Second)
	j.Warm, j.Version = true, "v1"
	return j
}

func runProbe(t *testing.T, r *Runner, params string) probeAnswer {
	t.Helper()
	res := mustRun(t, r, probeJob(t, params))
	if res.Status != contract.StatusCompleted {
		t.Fatalf("Status = %q, err %+v", res.Status, res.Err)
	}
	var a probeAnswer
	if err := json.Unmarshal(res.Data, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestRunnersAreForkedFromTheirTemplate: the runners of a blocking def script, the first one included, are
// forked from one process that imported the script (the template): each call runs in a child of it, in a
// session of its own, non-dumpable as a runner started afresh is, with SIGCHLD back to its default. With
// NoFork each runner imports the script itself.
func TestRunnersAreForkedFromTheirTemplate(t *testing.T) {
	t.Parallel()
	for _, mode := range forkModes(t) {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			r := newForkRunner(t, mode, nil)
			// Three overlapping calls need three runners.
			answers := make([]probeAnswer, 3)
			var wg sync.WaitGroup
			for i := range answers {
				wg.Go(func() { answers[i] = runProbe(t, r, `{"sleep": 0.5}`) })
			}
			wg.Wait()
			pids := map[int]bool{}
			for _, a := range answers {
				if a.PID == a.ImportedIn || a.PPID != a.ImportedIn || a.SID != a.PID {
					t.Errorf("call ran in %d (parent %d, session %d); the script was imported in %d: want a child of the importer leading its own session", a.PID, a.PPID, a.SID, a.ImportedIn)
				}
				if a.ImportedIn != answers[0].ImportedIn {
					t.Errorf("imported in %d and %d: want one template", a.ImportedIn, answers[0].ImportedIn)
				}
				if a.Dumpable != 0 || !a.SigchldDefault {
					t.Errorf("dumpable %d, SIGCHLD default %t: want 0 and true", a.Dumpable, a.SigchldDefault)
				}
				pids[a.PID] = true
			}
			if len(pids) != 3 {
				t.Errorf("three overlapping calls ran in %d processes: %+v", len(pids), answers)
			}
			// Python's at-fork hooks ran in each: random is reseeded, not the template's state thrice.
			if answers[0].Random == answers[1].Random || answers[1].Random == answers[2].Random || answers[0].Random == answers[2].Random {
				t.Errorf("forked runners drew the same random numbers: %+v", answers)
			}
			// Each runner has a folder of its own (working folder, HOME, TMPDIR), removed when it ends.
			folders := map[string]bool{}
			for _, a := range answers {
				if len(a.Folders) != 4 || a.Folders[0] == "" || len(slices.Compact(slices.Clone(a.Folders))) != 1 {
					t.Errorf("folders %q: want one folder as working folder, HOME, TMPDIR and tempfile's", a.Folders)
					continue
				}
				folders[a.Folders[0]] = true
			}
			if len(folders) != 3 {
				t.Errorf("three runners used %d folders: %v", len(folders), folders)
			}
			if err := r.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			for f := range folders {
				waitRemoved(t, f)
			}

			fresh := newForkRunner(t, mode, func(c *Config) { c.Warm.NoFork = true })
			if a := runProbe(t, fresh, `{}`); a.PID != a.ImportedIn {
				t.Errorf("NoFork: the call ran in %d, the script was imported in %d: want the same process", a.PID, a.ImportedIn)
			}
		})
	}
}

// TestForkedRunnerEndsAreDescribed: a forked runner that exits or is killed during a call fails it with the
// same message as a runner started afresh (the template reports its wait status), and the next call gets a
// new runner from the same template.
func TestForkedRunnerEndsAreDescribed(t *testing.T) {
	t.Parallel()
	for _, mode := range forkModes(t) {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			r := newForkRunner(t, mode, nil)
			first := runProbe(t, r, `{}`)
			for _, tc := range []struct{ params, message string }{
				{`{"exit": 7}`, "exited with status 7 before returning a result"},
				{`{"kill": true}`, "killed by signal 9 (killed) before returning a result; possibly out of memory"},
			} {
				res := mustRun(t, r, probeJob(t, tc.params))
				if res.Status != contract.StatusFailed || res.Err == nil || res.Err.Code != contract.CodeScriptCrashed ||
					!strings.Contains(res.Err.Message, tc.message) {
					t.Errorf("%s: got %q %+v, want script_crashed saying %q", tc.params, res.Status, res.Err, tc.message)
				}
			}
			if a := runProbe(t, r, `{}`); a.ImportedIn != first.ImportedIn || a.PID == first.PID || a.PPID != a.ImportedIn {
				t.Errorf("after the crashes: call in %d forked from %d; want a new child of the template %d", a.PID, a.PPID, first.ImportedIn)
			}
		})
	}
}

// TestTemplateThatDiesIsReplaced: when a template dies, the next start makes a new one and forks from it.
func TestTemplateThatDiesIsReplaced(t *testing.T) {
	t.Parallel()
	for _, mode := range containments(t) {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			// One request per runner: every call needs a new one.
			r := newForkRunner(t, mode, func(c *Config) { c.Warm.MaxRequests = 1 })
			first := runProbe(t, r, `{}`)
			tw := onlyTemplate(t, r)
			tw.kill("test")
			<-tw.exited
			a := runProbe(t, r, `{}`)
			if a.ImportedInHost == first.ImportedInHost || a.PID == a.ImportedIn || a.PPID != a.ImportedIn {
				t.Errorf("after the template %d died: call in %d (parent %d), imported in %d (%d to the worker); want a child of a new template",
					first.ImportedInHost, a.PID, a.PPID, a.ImportedIn, a.ImportedInHost)
			}
		})
	}
}

// waitRemoved waits for path to be removed.
func waitRemoved(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is still there", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// onlyTemplate returns the process of r's one template.
func onlyTemplate(t *testing.T, r *Runner) *warmProc {
	t.Helper()
	r.warm.mu.Lock()
	defer r.warm.mu.Unlock()
	if len(r.warm.templates) != 1 {
		t.Fatalf("%d templates, want 1", len(r.warm.templates))
	}
	for _, s := range r.warm.templates {
		if s.t == nil {
			t.Fatal("the template has not started")
		}
		return s.t.w
	}
	return nil
}

// TestForkedRunnersEscapeesDie: what a forked runner's script leaves behind, in its group, in its session
// or out of it (setsid, a daemon's double fork), does not outlive the runner, whether the call returns or
// times out.
func TestForkedRunnersEscapeesDie(t *testing.T) {
	t.Parallel()
	for _, mode := range containments(t) {
		for _, tc := range escapeCases {
			t.Run(mode+"/"+tc.name(), func(t *testing.T) {
				t.Parallel()
				// One request per runner: the runner (forked, as every one-call runner) ends after the call, and with
				// it what it left.
				r := newForkRunner(t, mode, func(c *Config) { c.Warm.MaxRequests = 1 })
				leader, escaped := tc.run(t, r, true)
				assertGone(t, leader, escaped)
			})
		}
	}
}

// TestTemplateLifecycle: a template outlives its runners only by the idle timeout (then it is stopped), a
// newer version of its script gets a template of its own and the old one stops once its runners are gone,
// and Shutdown stops the templates.
func TestTemplateLifecycle(t *testing.T) {
	t.Parallel()
	t.Run("idle", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, func(c *Config) { c.Warm = WarmConfig{IdleTimeout: 300 * time.Millisecond} })
		t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
		runProbe(t, r, `{}`)
		tw := onlyTemplate(t, r)
		waitTemplateExited(t, tw, "an idle template with no runners left")
		if n := templateCount(r); n != 0 {
			t.Fatalf("%d templates left", n)
		}
	})
	t.Run("version", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, func(c *Config) { c.Warm = WarmConfig{IdleTimeout: time.Minute} })
		t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
		v1 := runProbe(t, r, `{}`)
		old := onlyTemplate(t, r)
		j := probeJob(t, `{}`)
		j.Version, j.Content = "v2", "other content"
		res := mustRun(t, r, j)
		var v2 probeAnswer
		if err := json.Unmarshal(res.Data, &v2); err != nil || v2.ImportedInHost == v1.ImportedInHost {
			t.Fatalf("v2 ran %s in a runner of the template %d (v1's: %d)", res.Data, v2.ImportedInHost, v1.ImportedInHost)
		}
		// v1's idle runner is discarded as v2 runs; the reaper then stops its template.
		waitTemplateExited(t, old, "the template of an older version")
	})
	t.Run("shutdown", func(t *testing.T) {
		t.Parallel()
		r := newTestRunner(t, nil)
		runProbe(t, r, `{}`)
		tw := onlyTemplate(t, r)
		if err := r.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		select {
		case <-tw.exited:
		default:
			t.Fatal("Shutdown returned with the template running")
		}
	})
}

func templateCount(r *Runner) int {
	r.warm.mu.Lock()
	defer r.warm.mu.Unlock()
	return len(r.warm.templates)
}

func waitTemplateExited(t *testing.T, w *warmProc, what string) {
	t.Helper()
	select {
	case <-w.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s still runs", what)
	}
}

// TestScriptsThatCannotBeForkedStartAfresh: a script that opens a socket or starts a thread at import is not
// forked (its runners would share the socket, or lack the thread): each runner imports it itself.
func TestScriptsThatCannotBeForkedStartAfresh(t *testing.T) {
	t.Parallel()
	for _, script := range []string{"fork_holds_socket", "fork_starts_thread"} {
		t.Run(script, func(t *testing.T) {
			t.Parallel()
			r := newTestRunner(t, nil)
			t.Cleanup(func() { _ = r.Shutdown(context.Background()) })
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() {
					j := job(t, script, `{}`, 20*time.Second)
					j.Warm, j.Version = true, "v1"
					res := mustRun(t, r, j)
					var a probeAnswer
					if err := json.Unmarshal(res.Data, &a); err != nil || a.PID == 0 {
						t.Errorf("%s: %s %+v", script, res.Data, res.Err)
						return
					}
					if a.PID != a.ImportedIn {
						t.Errorf("the call ran in %d, the script was imported in %d: want a runner that imported it", a.PID, a.ImportedIn)
					}
				})
			}
			wg.Wait()
			if n := templateCount(r); n != 0 {
				t.Errorf("%d templates", n)
			}
		})
	}
}

// TestForkedRunnersCannotPryIntoEachOther: a forked runner can neither read nor write the memory of its
// template or of a sibling forked from it, nor reopen their descriptors (their pipes to the worker): forks
// stay non-dumpable, although they are of the same script and user. The script does all of that to a child
// of its own (the control).
func TestForkedRunnersCannotPryIntoEachOther(t *testing.T) {
	t.Parallel()
	for _, mode := range containments(t) {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			r := sameUserRunner(t, mode, sandboxUser, nil)
			t.Cleanup(func() { _ = r.Shutdown(context.Background()) }) // not t.Context(): it is cancelled before cleanups run
			pry := func(params string) Result {
				j := job(t, "pries_runner", params, 20*time.Second)
				j.Warm, j.Version = true, "v1"
				return mustRun(t, r, j)
			}
			pry(`{"pid": 1}`) // starts the template; its first runner stays idle
			r.warm.mu.Lock()
			template := r.warm.templates[r.warm.idle[0].key].t.serving
			sibling := r.warm.idle[0].pid
			r.warm.mu.Unlock()
			// The sibling serves a call that waits while another runner, forked for the next call, pries.
			done := make(chan struct{})
			go func() {
				defer close(done)
				j := job(t, "pries_runner", `{"pid": 1, "sleep": 3}`, 20*time.Second)
				j.Warm, j.Version = true, "v1"
				_, _ = r.Run(t.Context(), j) // not mustRun: no t.Fatal off the test's goroutine
			}()
			waitFor(t, func() bool { return r.WarmStats().Idle == 0 }, "the sibling to take its call")
			for name, pid := range map[string]int{"template": template, "sibling": sibling} {
				assertPryRefused(t, pry(fmt.Sprintf(`{"pid": %d, "control": true}`, pid)), name)
			}
			<-done
		})
	}
}

// chargeScript leaves a file in params["dir"] and waits up to params["wait"] seconds until params["n"] calls
// have left theirs, then answers how many it saw: when every one of n calls sees n, the first was still
// running when the last started, so all n ran at once. params["keep_mb"] makes it keep that many MiB
// (written, so resident) in its process after the call.
const chargeScript = `import os
import time

KEPT = []


def scrape(params):
    if params.get("keep_mb"):
        KEPT.append(b"x" * (params["keep_mb"] << 20))
    open(os.path.join(params["dir"], str(os.getpid())), "w").close()
    deadline = time.time() + params.get("wait", 0)
    while len(os.listdir(params["dir"])) < params.get("n", 1) and time.time() < deadline:
        time.sleep(0.01)
    return {"together": len(os.listdir(params["dir"]))}
`

// chargeCaller runs chargeScript, written into a folder of its own as script name, on r.
type chargeCaller struct {
	t         *testing.T
	r         *Runner
	name, dir string
	timeout   time.Duration
}

func newChargeCaller(t *testing.T, r *Runner, name string) *chargeCaller {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/scraper.py", []byte(chargeScript), 0o644); err != nil {
		t.Fatal(err)
	}
	return &chargeCaller{t: t, r: r, name: name, dir: dir, timeout: 30 * time.Second}
}

func (c *chargeCaller) job() Job {
	return Job{RequestID: "charge", ScriptName: c.name, ScriptDir: c.dir, Timeout: c.timeout, Warm: true, Version: "v1"}
}

// call runs one call that leaves its file in dir and waits up to wait seconds for n; it answers how many
// files the call saw, or the run's failure.
func (c *chargeCaller) call(dir string, n int, wait float64, keepMB int) (int, error) {
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return 0, err
	}
	_ = os.Chmod(dir, 0o777) // the script may run as another user
	j := c.job()
	j.Parameters = json.RawMessage(fmt.Sprintf(`{"dir":%q,"n":%d,"wait":%g,"keep_mb":%d}`, dir, n, wait, keepMB))
	res, err := c.r.Run(c.t.Context(), j)
	if err != nil {
		return 0, err
	}
	if res.Status != contract.StatusCompleted {
		return 0, fmt.Errorf("status %q: %+v", res.Status, res.Err)
	}
	var a struct{ Together int }
	return a.Together, json.Unmarshal(res.Data, &a)
}

// together runs calls calls at once, each waiting up to wait seconds for all of them.
func (c *chargeCaller) together(dir string, calls int, wait float64, keepMB int) []int {
	got := make([]int, calls)
	errs := make([]error, calls)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() { got[i], errs[i] = c.call(dir, calls, wait, keepMB) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.t.Fatal(err)
	}
	return got
}

// idleCharges returns what r's idle runners hold of the memory budget.
func idleCharges(r *Runner) []int64 {
	r.warm.mu.Lock()
	defer r.warm.mu.Unlock()
	var out []int64
	for _, w := range r.warm.idle {
		out = append(out, w.charge())
	}
	return out
}

// TestForkedRunnersAreChargedWhatTheyUse: the memory budget charges a new runner RUNNER_MEMORY_MB until its
// script's forked runners have been measured, then what they were measured to hold (at least
// minForkCharge); a forked runner, once measured after its first call, holds what it was measured to
// hold, idle or not; the template holds its resident memory while it lives. In a budget of 120 MiB with
// RUNNER_MEMORY_MB 40 (three runs at once, were every run charged 40), six forked runners of a small
// script run at once; runners that keep 60 MiB each are charged that much.
func TestForkedRunnersAreChargedWhatTheyUse(t *testing.T) {
	t.Parallel()
	for _, mode := range containments(t) {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			r := newForkRunner(t, mode, func(c *Config) {
				c.MemoryBudgetBytes, c.RunnerMemoryBytes = 120<<20, 40<<20
			})
			c := newChargeCaller(t, r, "charged")
			base := t.TempDir()
			if _, err := c.call(base+"/first", 1, 0, 0); err != nil { // starts the template; measures its first child
				t.Fatal(err)
			}
			key := onlyTemplate(t, r).key
			if charge := r.blockingCharge(c.job(), key); charge >= 40<<20 || charge < minForkCharge {
				t.Fatalf("after a measured call the script's runs are charged %d MiB: want less than RUNNER_MEMORY_MB's 40, at least the floor", charge>>20)
			}
			// The idle runner holds what it was measured to hold, not its start's 40 MiB; the template holds its
			// resident memory.
			if held := idleCharges(r); len(held) != 1 || held[0] >= 40<<20 || held[0] < minForkCharge {
				t.Fatalf("the idle runner holds %v bytes: want its measured charge, under 40 MiB", held)
			}
			if used, holders := r.blocking.inUse(); holders != 2 || used <= idleCharges(r)[0] {
				t.Errorf("between calls the budget holds %d bytes for %d: want the idle runner's charge and the template's memory", used, holders)
			}
			for _, n := range c.together(base+"/small", 6, 15, 0) {
				if n != 6 {
					t.Fatalf("six calls of a small forked script saw %d at once: want 6 (each charged what it was measured to use)", n)
				}
			}
			// Two runners now keep 60 MiB each: measured after the call, each holds more than that, and new
			// runners of the script are charged so too.
			c.together(base+"/grow", 2, 0, 60)
			if charge := r.blockingCharge(c.job(), key); charge < 60<<20 {
				t.Fatalf("runners keeping 60 MiB are charged %d MiB: want at least 60", charge>>20)
			}
			if held := idleCharges(r); len(held) != 6 || slices.Max(held) < 60<<20 {
				t.Fatalf("idle runners hold %v bytes: want two of the six holding 60 MiB or more", held)
			}
			if err := r.Shutdown(t.Context()); err != nil {
				t.Fatal(err)
			}
			if used, holders := r.blocking.inUse(); used != 0 || holders != 0 {
				t.Errorf("after Shutdown the budget holds %d bytes for %d: want nothing", used, holders)
			}
		})
	}
}

// TestIdleRunnersAreChargedAndGiveWay: a runner holds its charge while idle, so the memory a burst's runners
// keep counts; a run of another script that needs memory the idle runners hold stops the least recently
// used of them instead of waiting for their idle timeout.
func TestIdleRunnersAreChargedAndGiveWay(t *testing.T) {
	t.Parallel()
	m := &countingMetrics{}
	r := newForkRunner(t, ContainSession, func(c *Config) {
		c.MemoryBudgetBytes, c.RunnerMemoryBytes = 100<<20, 40<<20
		c.Warm.NoFork = true // every runner charged RUNNER_MEMORY_MB
		c.Warm.IdleTimeout = time.Hour
		c.Metrics = m
	})
	if total, held, waiting := m.lastBudget(); total != 100<<20 || held != 0 || waiting != 0 {
		t.Errorf("at start the metrics report a budget of %d bytes, %d held, %d waiting: want 100 MiB, 0, 0", total, held, waiting)
	}
	a, b := newChargeCaller(t, r, "charged_a"), newChargeCaller(t, r, "charged_b")
	base := t.TempDir()
	if seen := a.together(base+"/a", 2, 10, 0); slices.Min(seen) != 2 {
		t.Fatalf("two calls of a saw %v: want both at once", seen)
	}
	if used, holders := r.blocking.inUse(); used != 80<<20 || holders != 2 {
		t.Fatalf("two idle runners: the budget holds %d MiB for %d; want 80 for 2", used>>20, holders)
	}
	if _, held, waiting := m.lastBudget(); held != 80<<20 || waiting != 0 {
		t.Errorf("the metrics report %d bytes held, %d waiting: want 80 MiB, 0", held, waiting)
	}
	// b needs 40 MiB; 20 are free: one of a's idle runners is stopped for it.
	b.timeout = 10 * time.Second
	if _, err := b.call(base+"/b", 1, 0, 0); err != nil {
		t.Fatalf("a run waiting for memory that idle runners hold: %v", err)
	}
	if s := r.WarmStats(); s.Idle != 2 || s.Recycled != 1 {
		t.Errorf("after b: %d idle runners, %d recycled; want a's newest and b's, one of a's stopped", s.Idle, s.Recycled)
	}
	if used, holders := r.blocking.inUse(); used != 80<<20 || holders != 2 {
		t.Errorf("after b: the budget holds %d MiB for %d; want 80 for 2", used>>20, holders)
	}
}

// TestRunWaitingForMemoryTakesItsScriptsRunner: a call waiting for memory for a new runner takes a runner of
// its script that another call puts back, instead of that runner being stopped and a new one started.
func TestRunWaitingForMemoryTakesItsScriptsRunner(t *testing.T) {
	t.Parallel()
	r := newForkRunner(t, ContainSession, func(c *Config) {
		c.MemoryBudgetBytes, c.RunnerMemoryBytes = 100<<20, 40<<20
		c.Warm.NoFork = true // every runner charged RUNNER_MEMORY_MB: two at once
		c.Warm.IdleTimeout = time.Hour
	})
	a := newChargeCaller(t, r, "charged_a")
	base := t.TempDir()
	// Three calls, each waiting up to 1 s for three files (named by the process that ran the call): two run
	// at once and see two; the third waits for memory, then runs on one of their runners, whose file it
	// rewrites, and sees two as well (three, had it started a runner of its own).
	if seen := a.together(base+"/a", 3, 1, 0); !slices.Equal(seen, []int{2, 2, 2}) {
		t.Errorf("three calls in a budget of two runners saw %v: want 2 each (the third on a runner put back)", seen)
	}
	if s := r.WarmStats(); s.Started != 2 || s.Recycled != 0 {
		t.Errorf("%d runners started, %d recycled: want 2 and 0 (the waiting call took a runner put back)", s.Started, s.Recycled)
	}
}
