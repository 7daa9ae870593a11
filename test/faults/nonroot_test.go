package faults

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/local/stack"

	"github.com/scrapeplatform/platform/shared/proctest"
	"github.com/scrapeplatform/platform/shared/scripttest"
)

// TestNonRootWorker runs a worker as an unprivileged user, as the container image does (uid 10001 there):
// no PID namespace, no other user for scripts. Its containment is session, as the image gets under
// Docker's default seccomp profile (Fargate), which refuses user namespaces: this host may allow them, and
// the worker would then contain its runs in namespaces of their own (ContainUserns, tested in
// worker/internal/runner's userns_test.go), where these fixtures cannot report to the host. The session sweep must still end a setsid escapee at the
// timeout, the process limit must still stop a fork bomb, and a script, although it runs as the worker's
// own user, must not read the worker's /proc/<pid>/environ.
func TestNonRootWorker(t *testing.T) {
	t.Parallel()
	e := start(t, options{workers: 0, gatewayEnv: []string{slowMachineGrace}})
	id := "worker-nonroot"
	work := filepath.Join(e.base, "work-"+id)
	home := filepath.Join(e.base, "home-"+id)
	var wrapper []string
	environ := append([]string{}, e.baseEnv...)
	environ = append(environ, "SCRIPT_REPOSITORY_TYPE=local", "SCRIPT_REPOSITORY_URL="+e.scripts, "WORKER_CONCURRENCY=3",
		"SCRIPT_MAX_PROCESSES=64", "SCRIPT_MEMORY_LIMIT_MB=256", "SCRIPT_CONTAINMENT=session")
	if os.Getuid() == 0 {
		// Become the unprivileged user, keeping no capabilities.
		for _, d := range []string{work, home} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(d, sandboxUID, sandboxUID); err != nil {
				t.Fatal(err)
			}
		}
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Fatal("running the worker as another user needs setpriv (util-linux)")
		}
		wrapper = []string{setpriv, "--reuid=" + strconv.Itoa(sandboxUID), "--regid=" + strconv.Itoa(sandboxUID), "--clear-groups", "--"}
		environ = append(environ, "WORKER_PYTHON="+scripttest.SandboxPython(t, sandboxUID, "FAULTS_SANDBOX_PYTHON"))
	}
	addr := proctest.FreeAddr(t)
	environ = append(environ, "HOME="+home, "WORKER_ID="+id, "WORKER_METRICS_ADDR="+addr, "WORKER_WORK_DIR="+work)
	bin := filepath.Join(binDir, "worker")
	args := []string{}
	if wrapper != nil {
		bin, args = wrapper[0], append(wrapper[1:], filepath.Join(binDir, "worker"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := stack.StartProcess(context.WithoutCancel(ctx), id, bin, args, environ, e.out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(40 * time.Second) })
	if err := stack.WaitReady(ctx, p, "http://"+addr+"/healthz", 30*time.Second); err != nil {
		t.Fatalf("%v\n%s", err, proctest.Tail(e.out.String(), 5000))
	}
	e.out.WaitLine(t, 30*time.Second, `"msg":"script containment"`, `"worker_id":"`+id+`"`, `"pid_namespace":false`)

	// The escapee dies at the timeout (session sweep).
	pidFile := filepath.Join(e.pidDir, "nonroot-escapee")
	r := e.scrape("escapes_and_sleeps", map[string]any{"pid_file": pidFile}, escapeeTimeout)
	if r.code != 200 || r.status() != "timeout" {
		t.Fatalf("escapee: %d %s %v", r.code, r.raw, r.err)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var group, escapee int
	fmt.Sscanf(string(b), "%d %d", &group, &escapee)
	if live := waitDead([]int{escapee}, 15*time.Second); len(live) > 0 {
		t.Errorf("the setsid escapee %d survived its run", escapee)
	}

	// The fork bomb meets the process limit.
	bomb := e.scrape("fork_bomb", map[string]any{"pid_file": filepath.Join(e.pidDir, "nonroot-bomb")}, 20)
	if bomb.code != 200 || bomb.body["error_type"] != "BlockingIOError" {
		t.Errorf("fork bomb: %d %s %v", bomb.code, bomb.raw, bomb.err)
	}

	// The worker's environment is out of reach of its own user's scripts.
	environPath := fmt.Sprintf("/proc/%d/environ", p.Pid())
	secrets := e.scrape("reads_files", map[string]any{"paths": []string{environPath}}, 20)
	if secrets.code != 200 || !strings.Contains(secrets.raw, "PermissionError") || strings.Contains(secrets.raw, awsSecretKey) {
		t.Errorf("reading %s: %d %s", environPath, secrets.code, secrets.raw)
	}
	// Being non-dumpable must not cost the worker its own /proc: the process collector still reports.
	if fds := metric(t, "http://"+addr+"/metrics", "process_open_fds"); fds <= 0 {
		t.Errorf("process_open_fds = %v: the non-dumpable worker cannot read its own /proc", fds)
	}
	// Another script's warm runner, of the same user, is closed to a script: neither its memory nor its
	// pipes can be reached through /proc (runners are non-dumpable), while a process of the script's own is
	// (the control, so the refusal is the runner's protection).
	victim := e.scrape("warm_state", nil, 20)
	victimData, _ := victim.body["data"].(map[string]any)
	victimPID, _ := victimData["pid"].(float64)
	if victim.code != 200 || victimPID == 0 {
		t.Fatalf("warm_state: %d %s %v", victim.code, victim.raw, victim.err)
	}
	pry := e.scrape("pries_runner", map[string]any{"pid": int(victimPID), "control": true}, 20)
	pryData, _ := pry.body["data"].(map[string]any)
	target, _ := pryData["target"].(map[string]any)
	control, _ := pryData["control"].(map[string]any)
	if pry.code != 200 || target == nil || control == nil {
		t.Fatalf("pries_runner: %d %s %v", pry.code, pry.raw, pry.err)
	}
	if fdList, _ := control["fd_list"].(string); !strings.HasPrefix(fdList, "ok") {
		t.Fatalf("control: the script could not list its own child's descriptors, so the test proves nothing: %s", pry.raw)
	}
	refused := 0
	for _, k := range []string{"mem_read", "mem_write", "fd_list"} {
		if v, _ := target[k].(string); !strings.HasPrefix(v, "PermissionError") {
			t.Errorf("%s of another script's warm runner: %q", k, v)
		} else {
			refused++
		}
	}
	fds, _ := target["fds"].(map[string]any)
	for fd, v := range fds {
		if s, _ := v.(string); !strings.HasPrefix(s, "PermissionError") {
			t.Errorf("reopening /proc/%d/fd/%s of another script's warm runner: %q", int(victimPID), fd, s)
		} else {
			refused++
		}
	}
	if len(fds) == 0 {
		t.Errorf("no descriptor of the warm runner was tried: %s", pry.raw)
	}
	report(t, "non-root worker: a script pries into another script's warm runner (/proc/<pid>/mem, /proc/<pid>/fd/N)",
		"every access refused (runners are non-dumpable)",
		fmt.Sprintf("%d accesses refused, script uid %v; its own child open to it (control)", refused, pryData["uid"]),
		"answer "+ms(pry.latency))
	report(t, "non-root worker (as in the container image): setsid escapee, fork bomb, /proc/<worker>/environ",
		"escapee killed at the timeout; fork bomb stopped; environ unreadable",
		fmt.Sprintf("session containment (no PID namespace); escapee gone; fork bomb: %v; environ: %s", bomb.body["error_type"],
			map[bool]string{true: "PermissionError (worker non-dumpable)", false: "READ"}[strings.Contains(secrets.raw, "PermissionError")]),
		fmt.Sprintf("timeout answer %s, fork bomb answer %s", ms(r.latency), ms(bomb.latency)))
}
