package faults

import (
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestWorkerKilledMidJob: a worker SIGKILLed while its script runs loses the task to the broker, which
// redelivers it to another worker; the caller gets exactly one answer, and nothing the first run started
// (the script, its grandchild, a setsid escapee) survives the worker.
func TestWorkerKilledMidJob(t *testing.T) {
	t.Parallel()
	e := start(t, options{workers: 2, workerEnv: []string{"WORKER_CONCURRENCY=1"}})

	var r result
	done := make(chan struct{})
	go func() {
		r = e.scrape("long_job", map[string]any{"pid_dir": e.pidDir, "seconds": 3}, 20)
		close(done)
	}()
	line := e.out.WaitLine(t, 15*time.Second, `"msg":"task started"`, `"script":"long_job"`)
	var victim *workerProc
	for _, w := range e.workers {
		if strings.Contains(line, `"worker_id":"`+w.id+`"`) {
			victim = w
		}
	}
	if victim == nil {
		t.Fatalf("cannot tell which worker runs the task: %s", line)
	}
	// Let the script start its processes and record them, then crash the worker.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if runs, _ := readPidDir(t, e.pidDir); runs >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the script never recorded its processes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, firstRun := readPidDir(t, e.pidDir)
	killed := time.Now()
	if err := syscall.Kill(victim.proc.Pid(), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	orphans := waitDead(firstRun, 15*time.Second)
	orphanWait := time.Since(killed)

	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the caller got no answer")
	}
	if r.err != nil || r.code != 200 || r.status() != "completed" {
		t.Fatalf("caller got %d %s %v", r.code, r.raw, r.err)
	}
	if r.body["worker_id"] == victim.id {
		t.Fatalf("the answer came from the killed worker: %s", r.raw)
	}
	if len(orphans) > 0 {
		t.Errorf("processes of the killed worker's run survive it: %v (of %v)", orphans, firstRun)
	}
	// The other worker logged the redelivery before it answered, but its output reaches this test through a
	// pipe and a copying goroutine, which may trail the answer.
	e.out.WaitLine(t, 10*time.Second, `"msg":"task redelivered"`)
	if n := e.out.Count(`"msg":"task redelivered"`); n != 1 {
		t.Errorf("%d redeliveries logged, want 1", n)
	}
	// Exactly one answer: no second reply reached the gateway (it would be dropped and counted).
	dropped := metric(t, e.gatewayURL+"/metrics", "scraping_rpc_replies_dropped_total")
	if dropped != 0 {
		t.Errorf("the gateway dropped %v replies; a duplicate answer was sent", dropped)
	}
	runs, all := readPidDir(t, e.pidDir)
	if live := waitDead(all, 15*time.Second); len(live) > 0 {
		t.Errorf("script processes still alive after both runs: %v", live)
	}
	report(t, "worker SIGKILLed mid-job", "redelivered to another worker, one answer, no orphan processes",
		fmt.Sprintf("200 completed by %v after redelivery; the first run's %d processes (script, grandchild, setsid escapee) gone %s after the kill; 0 replies dropped",
			r.body["worker_id"], len(firstRun), ms(orphanWait)),
		fmt.Sprintf("1 request, 1 answered, 0 lost; %d runs; answer %s after the kill, %s in total", runs, ms(r.start.Add(r.latency).Sub(killed)), ms(r.latency)))
}

// TestWorkerStoppedUnderLoad: a worker that gets SIGTERM while running scrapes finishes what fits in its
// drain bound, requeues the rest (another worker completes them), and exits (how soon is a figure). No
// request is lost.
func TestWorkerStoppedUnderLoad(t *testing.T) {
	t.Parallel()
	const drain = 2 * time.Second
	e := start(t, options{workers: 2, workerEnv: []string{"WORKER_CONCURRENCY=3", "WORKER_DRAIN_TIMEOUT=" + drain.String()}})
	victim := e.workers[0]

	const n = 12
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		seconds := 0.5 // the first six fill both workers' slots and outlast the drain bound; the rest are short
		if i < 6 {
			seconds = 3.5
		}
		// The longest timeout the gateway accepts (SCRAPE_MAX_TIMEOUT, 25 s): the surviving worker also runs
		// the requeued 3.5 s scrapes.
		wg.Go(func() { results[i] = e.scrape("sleeper", map[string]any{"seconds": seconds, "i": i}, 25) })
	}
	e.out.WaitLine(t, 15*time.Second, `"msg":"task started"`, `"worker_id":"`+victim.id+`"`)
	time.Sleep(300 * time.Millisecond)
	stopped := time.Now()
	if err := victim.proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var exitAfter time.Duration
	select {
	case <-victim.proc.Done():
		exitAfter = time.Since(stopped)
	case <-time.After(60 * time.Second): // a hang guard; the exit time is a figure
		t.Fatal("the worker did not exit within a minute of SIGTERM")
	}
	wg.Wait()

	answered, byVictim, byOther := 0, 0, 0
	var latencies []time.Duration
	for i, r := range results {
		latencies = append(latencies, r.latency)
		if r.err != nil || r.code != 200 || r.status() != "completed" {
			t.Errorf("scrape %d: %d %s %v", i, r.code, r.raw, r.err)
			continue
		}
		answered++
		if r.body["worker_id"] == victim.id {
			byVictim++
		} else {
			byOther++
		}
	}
	requeued := e.out.Count(`"msg":"requeueing task"`, `"worker_id":"`+victim.id+`"`)
	s := summarise(latencies)
	report(t, "worker SIGTERMed under load (drain 2 s)", "in-flight scrapes finish or are requeued at the drain bound; the worker exits; nothing lost",
		fmt.Sprintf("%s: %d finished by the stopping worker, %d by the other (%d requeued); worker exited %s after SIGTERM (drain 2 s + 5 s kill grace)",
			map[bool]string{true: "all answered", false: "SOME UNANSWERED"}[answered == n], byVictim, byOther, requeued, ms(exitAfter)),
		fmt.Sprintf("%d sent, %d answered, %d lost; max latency %s", n, answered, n-answered, ms(s.max)))
}
