package faults

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/local/stack"
	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/proctest"
)

// load runs callers goroutines that scrape echo until stop is closed or max requests were sent, pausing
// pause between requests. It returns every result.
func (e *env) load(callers, max int, timeout float64, pause time.Duration, stop <-chan struct{}) []result {
	var (
		mu      sync.Mutex
		results []result
		sent    atomic.Int64
		wg      sync.WaitGroup
	)
	for c := range callers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if sent.Add(1) > int64(max) {
					return
				}
				r := e.scrape("echo", map[string]any{"caller": c, "i": i}, timeout)
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
				time.Sleep(pause)
			}
		})
	}
	wg.Wait()
	return results
}

// tally counts answers by kind and fails the test for a request without an answer or with an unexpected
// one. Latencies are figures for the report, never checked against a bound: on a loaded machine any wall-
// clock bound is a guess.
type tally struct {
	sent, completed, unavailable, noWorker, tooMany, other, noAnswer int
	latencies                                                        []time.Duration
	retryAfter                                                       int
}

func count(t *testing.T, results []result) tally {
	t.Helper()
	var c tally
	for _, r := range results {
		c.sent++
		c.latencies = append(c.latencies, r.latency)
		switch {
		case r.err != nil:
			c.noAnswer++
			t.Errorf("no answer: %v", r.err)
		case r.code == 200 && r.status() == "completed":
			c.completed++
		case r.code == 503:
			c.unavailable++
		case r.code == 504:
			c.noWorker++
		case r.code == 429:
			c.tooMany++
		default:
			c.other++
			t.Errorf("unexpected answer %d %s", r.code, r.raw)
		}
		if r.code == 503 || r.code == 429 {
			if r.header.Get("Retry-After") != "" {
				c.retryAfter++
			}
		}
	}
	return c
}

// beyond counts the answers that came later than bound (a figure for the report).
func (c tally) beyond(bound time.Duration) int {
	n := 0
	for _, l := range c.latencies {
		if l > bound {
			n++
		}
	}
	return n
}

func (c tally) String() string {
	s := summarise(c.latencies)
	return fmt.Sprintf("%d sent: %d completed, %d×503, %d×504, %d×429, %d without answer, %d lost; latency p50 %s, max %s",
		c.sent, c.completed, c.unavailable, c.noWorker, c.tooMany, c.noAnswer, c.noAnswer+c.other, ms(s.p50), ms(s.max))
}

// goroutines reads go_goroutines and process_open_fds from a /metrics URL.
func goroutines(t *testing.T, url string) (g, fds float64) {
	return metric(t, url, "go_goroutines"), metric(t, url, "process_open_fds")
}

// TestBrokerRestartUnderLoad stops the (private) broker during a burst and starts it again. Every caller
// gets a result or a clear 503/504 (how long it waited is a figure); the gateway and the workers reconnect by
// themselves; no goroutine or connection is left over.
func TestBrokerRestartUnderLoad(t *testing.T) {
	t.Parallel()
	node := privateNode(t)
	e := start(t, options{amqpURL: node.URL(), workers: 2})
	// Warm up with the same load, so the baseline already holds the warm runners the burst will use. The
	// warm-up only prepares: its callers wait long, and one that is not answered (a cold runner on a loaded
	// machine) is retried; only a warm-up call that never completes stops the test.
	warm := make(chan struct{})
	time.AfterFunc(1500*time.Millisecond, func() { close(warm) })
	warmed := e.load(8, 1000, 20, 40*time.Millisecond, warm)
	warmRetries := 0
	for _, r := range warmed {
		for try := 1; r.err != nil || r.code != 200 || r.status() != "completed"; try++ {
			if try > 3 {
				t.Fatalf("warm-up: a call did not complete in 3 retries: %d %s %v", r.code, r.raw, r.err)
			}
			t.Logf("warm-up call answered %d %.200s %v; retrying", r.code, r.raw, r.err)
			warmRetries++
			r = e.scrape("echo", map[string]any{"warmup": "retry", "try": try}, 20)
		}
	}
	e.client.CloseIdleConnections()
	time.Sleep(time.Second)
	urls := []string{e.gatewayURL + "/metrics", e.workers[0].metricsURL, e.workers[1].metricsURL}
	var before [3][2]float64
	for i, u := range urls {
		before[i][0], before[i][1] = goroutines(t, u)
	}

	const timeout = 5.0
	stop := make(chan struct{})
	var results []result
	loaded := make(chan struct{})
	go func() { results = e.load(8, 6000, timeout, 40*time.Millisecond, stop); close(loaded) }()

	time.Sleep(2 * time.Second)
	stopAt := time.Now()
	if err := node.Stop(); err != nil {
		t.Fatalf("stop the broker: %v", err)
	}
	stoppedAt := time.Now()
	time.Sleep(2 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := node.Start(ctx); err != nil {
		t.Fatalf("start the broker again: %v", err)
	}
	backAt := time.Now()
	time.Sleep(12 * time.Second)
	close(stop)
	<-loaded

	// Every caller got an answer (a result, 503 or 504); how long each waited is a figure.
	c := count(t, results)
	callerBound := time.Duration(timeout*float64(time.Second)) + grace
	// Recovery: the first request sent after the broker is back that completes.
	sort.Slice(results, func(i, j int) bool { return results[i].start.Before(results[j].start) })
	var recovered time.Duration = -1
	for _, r := range results {
		if !r.start.Before(backAt) && r.code == 200 {
			recovered = r.start.Add(r.latency).Sub(backAt)
			break
		}
	}
	if recovered < 0 {
		// None in the load's window (the sessions redial with a backoff of up to 10 s, and a loaded machine
		// is slow): keep asking; the stack must serve again at all.
		for end := time.Now().Add(60 * time.Second); recovered < 0 && time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
			if r := e.scrape("echo", map[string]any{"after": "restart"}, timeout); r.code == 200 && r.status() == "completed" {
				recovered = r.start.Add(r.latency).Sub(backAt)
			}
		}
	}
	if recovered < 0 {
		t.Fatalf("no request completed in the minute after the load, the broker back since %s: %s", ms(time.Since(backAt)), c)
	}
	var duringOutage []time.Duration
	for _, r := range results {
		if r.start.After(stopAt) && r.start.Before(backAt) {
			duringOutage = append(duringOutage, r.latency)
		}
	}
	if c.unavailable+c.noWorker > 0 && c.retryAfter < c.unavailable {
		t.Errorf("%d of %d 503 answers carry Retry-After", c.retryAfter, c.unavailable)
	}

	// Nothing left over: goroutines and descriptors come back near where they were, and the broker sees
	// exactly one connection per session (gateway 1, each worker 2). Tasks whose callers gave up may still
	// run and sessions may still be redialling, so this polls until it holds, for up to 30 s.
	settleCtx, settleCancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer settleCancel()
	settleStart := time.Now()
	var (
		leaks    []string
		problems []string
		conns    int
		out      string
	)
	for deadline := settleStart.Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		e.client.CloseIdleConnections()
		leaks, problems = nil, nil
		for i, u := range urls {
			g, fds := goroutines(t, u)
			if g > before[i][0]+15 || fds > before[i][1]+10 {
				problems = append(problems, fmt.Sprintf("%s: goroutines %v → %v, open fds %v → %v", u, before[i][0], g, before[i][1], fds))
			}
			leaks = append(leaks, fmt.Sprintf("%.0f→%.0f goroutines, %.0f→%.0f fds", before[i][0], g, before[i][1], fds))
		}
		var err error
		out, err = node.Ctl(settleCtx, "list_connections", "--quiet", "--no-table-headers", "name")
		switch {
		case err != nil:
			conns = -1
			problems = append(problems, fmt.Sprintf("list_connections: %v", err))
		default:
			conns = strings.Count(strings.TrimSpace(out), "\n") + 1
			if strings.TrimSpace(out) == "" {
				conns = 0
			}
			if conns != 5 {
				problems = append(problems, fmt.Sprintf("the broker sees %d connections, want 5 (gateway 1, workers 2 each):\n%s", conns, out))
			}
		}
		if len(problems) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, p := range problems {
				t.Errorf("30 s after the load: %s", p)
			}
			break
		}
	}
	settled := time.Since(settleStart)
	for _, w := range e.workers {
		resp, err := http.Get(strings.TrimSuffix(w.metricsURL, "/metrics") + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("%s unhealthy after the restart: %v %v", w.id, resp, err)
		} else {
			resp.Body.Close()
		}
	}
	outage := summarise(duringOutage)
	report(t, "broker restart under load (8 callers, graceful stop, 2 s down, start)",
		"every caller answered (result, or 503/504 at its timeout); reconnect by themselves; no leaks",
		fmt.Sprintf("%s; served again %s after the broker accepted AMQP; %d connections after (want 5); gateway %s, workers %s, %s",
			map[bool]string{true: "every caller answered", false: "SOME UNANSWERED"}[c.noAnswer == 0], ms(recovered), conns, leaks[0], leaks[1], leaks[2]),
		fmt.Sprintf("%s; %d answered later than timeout+grace (%s); broker down %s (stop took %s), requests sent during the outage: %d, max latency %s; settled %s after the load; warm-up retries %d",
			c, c.beyond(callerBound), ms(callerBound), ms(backAt.Sub(stopAt)), ms(stoppedAt.Sub(stopAt)), outage.n, ms(outage.max), ms(settled), warmRetries))
}

// TestBackpressure bounds the task queue with a policy (max-length + reject-publish): callers past the bound
// get 429 with Retry-After at once, accepted ones still complete. Then the broker's memory alarm blocks
// publishers: callers get 503 with Retry-After quickly, and the stack serves again when it clears.
func TestBackpressure(t *testing.T) {
	t.Parallel()
	node := privateNode(t)
	// The scrapes that hold the worker's slot wait for the test to release them, and between their start
	// and their release come rabbitmqctl calls, each an Erlang VM start (tens of seconds on a loaded
	// machine): they get a timeout well beyond the gateway's default maximum.
	const holdTimeout, holdSeconds = 80, 75
	e := start(t, options{amqpURL: node.URL(), workers: 1, workerEnv: []string{"WORKER_CONCURRENCY=1"},
		gatewayEnv: []string{fmt.Sprintf("SCRAPE_MAX_TIMEOUT=%ds", holdTimeout)}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute) // a hang guard for rabbitmqctl
	defer cancel()
	const maxLength = 3
	if _, err := node.Ctl(ctx, "set_policy", "--apply-to", "queues", "faults-backpressure", "^"+regexp.QuoteMeta(e.queue)+"$",
		fmt.Sprintf(`{"max-length":%d,"overflow":"reject-publish"}`, maxLength)); err != nil {
		t.Fatal(err)
	}
	waitPolicy(t, node, e.queue, "faults-backpressure")

	// One task occupies the only worker slot until the test releases it, after the burst; then requests
	// arrive one by one and fill the queue. A quorum queue learns that it is over its bound from the publish
	// that takes it there and tells the publishing channel after the fact, so one publish may overshoot the
	// bound; from then on the broker nacks, and the gateway answers 429. Each request is sent once the one
	// before it is in the queue or answered, so no two of them race the bound.
	gates := reachableDir(t) // release files: the test writes them, the scripts only look
	releaseFirst := filepath.Join(gates, "release-first")
	firstStarted := filepath.Join(e.pidDir, "first-started") // the scripts' user writes here
	var wg sync.WaitGroup
	var first result
	wg.Go(func() {
		first = e.scrape("sleeper", map[string]any{"seconds": holdSeconds, "until_file": releaseFirst, "started_file": firstStarted}, holdTimeout)
	})
	waitRuns(t, firstStarted, 30*time.Second, "the task that holds the worker's slot")
	fill := make([]result, maxLength+3)
	for i := range fill {
		depth := queueDepth(t, node.URL(), e.queue)
		answered := make(chan struct{})
		wg.Go(func() {
			defer close(answered)
			fill[i] = e.scrape("sleeper", map[string]any{"seconds": 0.1, "fill": i}, 25)
		})
		settled := func() bool {
			select {
			case <-answered:
				return true
			default:
				return queueDepth(t, node.URL(), e.queue) > depth
			}
		}
		for end := time.Now().Add(30 * time.Second); !settled(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("fill request %d neither reached the queue (depth %d) nor was answered in 30 s", i, depth)
			}
		}
	}
	t.Logf("queue depth before the burst: %d", queueDepth(t, node.URL(), e.queue))
	// Then ten at once, with the queue over its bound and the slot still held.
	over := make([]result, 10)
	var overWG sync.WaitGroup
	for i := range over {
		overWG.Go(func() { over[i] = e.scrape("sleeper", map[string]any{"seconds": 0.1, "over": i}, 25) })
	}
	overWG.Wait()
	if err := os.WriteFile(releaseFirst, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	var accepted, refused []result
	accepted = append(accepted, first)
	for _, r := range append(fill, over...) {
		switch {
		case r.code == 429:
			refused = append(refused, r)
		case r.code == 200 && r.status() == "completed":
			accepted = append(accepted, r)
		default:
			t.Errorf("unexpected answer: %d %s %v", r.code, r.raw, r.err)
		}
	}
	burstRefused := 0
	for _, r := range over {
		if r.code == 429 {
			burstRefused++
		}
	}
	full := count(t, refused)
	if len(accepted) > maxLength+2 || burstRefused != len(over) || full.retryAfter != len(refused) {
		t.Errorf("%d accepted (bound %d + the running one + at most one over), %d of the burst refused; %s; want every 429 with Retry-After",
			len(accepted), maxLength, burstRefused, full)
	}
	if first.code != 200 || !strings.Contains(first.raw, `"released":true`) {
		t.Errorf("the task that held the slot: %d %s %v; want it released by the test", first.code, first.raw, first.err)
	}
	ok := count(t, accepted)
	if ok.completed != len(accepted) {
		t.Errorf("accepted requests: %s; want all completed", ok)
	}
	s := summarise(full.latencies)
	report(t, fmt.Sprintf("backpressure: queue over its bound (policy max-length %d, overflow reject-publish)", maxLength),
		"429 with Retry-After quickly; accepted requests still complete",
		fmt.Sprintf("%d sent: %d accepted (1 running + %d queued), all completed; %d got 429 with Retry-After %q, among them all %d of a burst sent at once",
			1+len(fill)+len(over), len(accepted), len(accepted)-1, len(refused), retryAfterOf(refused), len(over)),
		fmt.Sprintf("429 latency p50 %s, max %s", ms(s.p50), ms(s.max)))

	// The memory alarm: RabbitMQ blocks every publishing connection. A scrape accepted just before it
	// finishes during the alarm (the test releases it once the alarm is in force): its worker cannot publish
	// the reply until the alarm clears. The script records each of its runs in a file, which the test reads
	// (log lines reach the test late, through a copying goroutine).
	release := filepath.Join(gates, "release-caught")
	caughtStarted := filepath.Join(e.pidDir, "caught-started")
	var caught result
	var caughtWG sync.WaitGroup
	caughtWG.Go(func() {
		caught = e.scrape("sleeper", map[string]any{"seconds": holdSeconds, "until_file": release, "started_file": caughtStarted}, holdTimeout)
	})
	waitRuns(t, caughtStarted, 30*time.Second, "the scrape to be caught by the alarm")
	caughtAt := time.Now()
	if _, err := node.Ctl(ctx, "set_vm_memory_high_watermark", "0.0000001"); err != nil {
		t.Fatal(err)
	}
	alarmed := time.Now()
	// The alarm reaches a connection when it next publishes: the broker then blocks it and says so
	// (connection.blocked), while the publish races that notice (its confirm, if it wins, leaves the caller
	// waiting for a reply no worker can send: a 504). So one priming call blocks the gateway's connection,
	// answered 503 or 504; more follow until GET /health says blocked (a call sent before the alarm reached
	// the connection blocks nothing). Then no call below races the notice.
	var primed []string
	var h result
	for end := alarmed.Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if h = e.do("GET", "/health", "", ""); h.code == 503 && strings.Contains(h.raw, `"rabbitmq":"blocked"`) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("health 30 s after the memory alarm was raised (%d priming calls: %v): %d %s %v; want 503 with rabbitmq blocked",
				len(primed), primed, h.code, h.raw, h.err)
		}
		p := e.scrape("echo", map[string]any{"prime": len(primed)}, 1)
		if p.code != 503 && p.code != 504 {
			t.Errorf("priming call during the memory alarm: %d %s %v; want 503 (blocked) or 504 (published before the notice)", p.code, p.raw, p.err)
		}
		primed = append(primed, strconv.Itoa(p.code))
	}
	gatewayBlocked := time.Since(alarmed)
	var blocked []result
	for i := range 6 {
		blocked = append(blocked, e.scrape("echo", map[string]any{"alarm": i}, 10))
	}
	b := count(t, blocked)
	if h := e.do("GET", "/health", "", ""); h.code != 503 || !strings.Contains(h.raw, `"rabbitmq":"blocked"`) {
		t.Errorf("health during the memory alarm: %d %s; want 503 with rabbitmq blocked", h.code, h.raw)
	}
	// The alarm is in force (the gateway was refused): let the caught script finish.
	if since := time.Since(caughtAt); since > holdSeconds*time.Second {
		t.Fatalf("the scrape to be caught started %s ago, longer than it waits for its release (%d s): raising the alarm took too long for this test to mean anything", ms(since), holdSeconds)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Hold the alarm until the caught scrape's worker has tried to reply and failed at least once.
	e.out.WaitLine(t, 60*time.Second, `"msg":"publish reply failed`, `"script":"sleeper"`)
	time.Sleep(time.Second)
	if _, err := node.Ctl(ctx, "set_vm_memory_high_watermark", "0.4"); err != nil {
		t.Fatal(err)
	}
	cleared := time.Now()
	caughtWG.Wait()
	// Its reply went out when the alarm cleared: the caller got its result, and the script ran once (the
	// task was held, not requeued to run again and count against the delivery limit).
	if caught.code != 200 || caught.status() != "completed" || !strings.Contains(caught.raw, `"released":true`) {
		t.Errorf("scrape caught by the alarm: %d %s %v; want its result once the alarm cleared", caught.code, caught.raw, caught.err)
	}
	runs := runsIn(t, caughtStarted)
	if runs != 1 {
		t.Errorf("the scrape caught by the alarm ran %d times, want once", runs)
	}
	var again result
	var servedAfter time.Duration
	for time.Since(cleared) < 30*time.Second {
		if again = e.scrape("echo", map[string]any{"after": "alarm"}, 5); again.code == 200 {
			servedAfter = again.start.Add(again.latency).Sub(cleared)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if again.code != 200 || again.status() != "completed" {
		t.Errorf("after the alarm cleared: %d %s", again.code, again.raw)
	}
	if h := e.do("GET", "/health", "", ""); h.code != 200 || !strings.Contains(h.raw, `"rabbitmq":"connected"`) {
		t.Errorf("health after the memory alarm: %d %s", h.code, h.raw)
	}
	if b.unavailable != len(blocked) || b.retryAfter != len(blocked) {
		t.Errorf("during the memory alarm: %s; want every one 503 with Retry-After", b)
	}
	bs := summarise(b.latencies)
	report(t, "backpressure: broker memory alarm (publishers blocked)", "503 with Retry-After quickly; serves again when the alarm clears; a scrape accepted before it is answered after it, run once",
		fmt.Sprintf("%d/%d got 503 with Retry-After %q; served again %s after the alarm cleared; the scrape caught by it answered %d %s after %s, run %d time(s)",
			b.unavailable, len(blocked), retryAfterOf(blocked), ms(servedAfter), caught.code, caught.status(), ms(caught.latency), runs),
		fmt.Sprintf("503 latency: first %s, p50 %s, max %s; the gateway's connection blocked %s after the alarm was raised, by %d priming call(s) answered %s",
			ms(blocked[0].latency), ms(bs.p50), ms(bs.max), ms(gatewayBlocked), len(primed), strings.Join(primed, ", ")))
}

// retryAfterOf returns the Retry-After of the last answer in rs ("" when there is none).
func retryAfterOf(rs []result) string {
	if len(rs) == 0 {
		return ""
	}
	return rs[len(rs)-1].header.Get("Retry-After")
}

// waitPolicy waits until the broker applies policy to queue.
func waitPolicy(t *testing.T, node *stack.Node, queue, policy string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := node.Ctl(context.Background(), "list_queues", "-q", "name", "policy")
		if err == nil {
			for _, line := range strings.Split(out, "\n") {
				if f := strings.Fields(line); len(f) == 2 && f[0] == queue && f[1] == policy {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("policy %s not applied to %s: %v\n%s", policy, queue, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestClusterNodeLost runs the stack against a three-node cluster and crashes the node that leads the task
// queue during a burst. The quorum queue elects another leader; no request whose publish was confirmed is
// lost. A ledger of confirmed publishes on a second quorum queue proves it message by message.
func TestClusterNodeLost(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var opts []stack.BrokerOptions
	for i := range 3 {
		opts = append(opts, stack.BrokerOptions{URL: fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", proctest.FreePort(t)),
			DataDir: t.TempDir() + "/" + strconv.Itoa(i), Logger: testLogger(t)})
	}
	formed := time.Now()
	nodes, err := stack.StartCluster(ctx, "faults-cluster-cookie-"+strconv.FormatInt(time.Now().UnixNano(), 36), opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		t.Cleanup(func() { _ = n.Stop() })
	}
	formedIn := time.Since(formed)

	// Declare the queues from node 2, so their leader is there (client-local placement); clients use node 1.
	queue := "faults-cluster-tasks"
	ledger := "faults-cluster-ledger"
	conn2, err := amqp.Dial(nodes[1].URL())
	if err != nil {
		t.Fatal(err)
	}
	ch2, err := conn2.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := broker.NewTopology(queue).Declare(ch2); err != nil {
		t.Fatal(err)
	}
	if _, err := ch2.QueueDeclare(ledger, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	conn2.Close()
	leader := queueLeader(t, nodes[0], queue)
	var victim *stack.Node
	for _, n := range nodes[1:] {
		if n.Name() == leader {
			victim = n
		}
	}
	if victim == nil {
		victim = nodes[2] // the leader is on node 1: lose a follower instead
	}

	e := start(t, options{amqpURL: nodes[0].URL(), workers: 2, env: []string{"RABBITMQ_TASK_QUEUE=" + queue}})
	// Warm up; a call not answered in time (a cold runner on a loaded machine) is retried.
	for i := range 3 {
		r := e.scrape("echo", map[string]any{"warmup": i}, 20)
		for try := 1; r.code != 200 || r.status() != "completed"; try++ {
			if try > 3 {
				t.Fatalf("warm-up: a call did not complete in 3 retries: %d %s %v", r.code, r.raw, r.err)
			}
			t.Logf("warm-up call answered %d %.200s %v; retrying", r.code, r.raw, r.err)
			r = e.scrape("echo", map[string]any{"warmup": i, "try": try}, 20)
		}
	}

	// The ledger: confirmed publishes, one at a time, on node 1.
	stop := make(chan struct{})
	var confirmed []int
	ledgerDone := make(chan struct{})
	go func() {
		defer close(ledgerDone)
		conn, err := amqp.Dial(nodes[0].URL())
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil || ch.Confirm(false) != nil {
			t.Error("ledger channel", err)
			return
		}
		for seq := 0; seq < 100000; seq++ {
			select {
			case <-stop:
				return
			default:
			}
			pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			dc, err := ch.PublishWithDeferredConfirmWithContext(pctx, "", ledger, false, false,
				amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(strconv.Itoa(seq))})
			if err == nil {
				if ok, werr := dc.WaitContext(pctx); ok && werr == nil {
					confirmed = append(confirmed, seq)
				}
			}
			cancel()
			time.Sleep(2 * time.Millisecond)
		}
	}()
	var results []result
	loaded := make(chan struct{})
	const timeout = 10.0
	go func() { results = e.load(6, 3000, timeout, 20*time.Millisecond, stop); close(loaded) }()

	time.Sleep(2 * time.Second)
	lostAt := time.Now()
	if err := victim.Halt(); err != nil {
		t.Fatalf("crash %s: %v", victim.Name(), err)
	}
	time.Sleep(8 * time.Second)
	close(stop)
	<-loaded
	<-ledgerDone

	c := count(t, results)
	callerBound := time.Duration(timeout*float64(time.Second)) + grace
	// Read the whole ledger back from node 1.
	conn, err := amqp.Dial(nodes[0].URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]bool{}
	for quiet := 0; quiet < 20; {
		d, ok, err := ch.Get(ledger, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			quiet++
			time.Sleep(50 * time.Millisecond)
			continue
		}
		n, _ := strconv.Atoi(string(d.Body))
		got[n] = true
	}
	lost := 0
	for _, seq := range confirmed {
		if !got[seq] {
			lost++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d confirmed ledger messages are gone", lost, len(confirmed))
	}
	if c.noWorker > 0 {
		// Not a loss by itself (the task may run after its caller gave up), but worth seeing in the report.
		t.Logf("%d requests got no reply within their timeout", c.noWorker)
	}
	newLeader := queueLeader(t, nodes[0], queue)
	var afterLoss []time.Duration
	for _, r := range results {
		if r.start.After(lostAt) {
			afterLoss = append(afterLoss, r.latency)
		}
	}
	al := summarise(afterLoss)
	report(t, "cluster node lost (3 nodes, the task queue's leader crashes mid-burst)",
		"no confirmed request lost (quorum queue)",
		fmt.Sprintf("leader %s → %s; ledger: %d confirmed, %d read back, %d lost; HTTP: %s, %d×504", short(leader), short(newLeader), len(confirmed), len(got), lost,
			map[bool]string{true: "every caller answered", false: "SOME UNANSWERED"}[c.noAnswer == 0], c.noWorker),
		fmt.Sprintf("%s; %d answered later than timeout+grace (%s); max latency after the crash %s; cluster formed in %s", c, c.beyond(callerBound), ms(callerBound), ms(al.max), ms(formedIn)))
}

// queueLeader asks node which node leads queue.
func queueLeader(t *testing.T, node *stack.Node, queue string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := node.Ctl(context.Background(), "list_queues", "-q", "name", "leader")
		if err == nil {
			for _, line := range strings.Split(out, "\n") {
				if f := strings.Fields(line); len(f) == 2 && f[0] == queue && f[1] != "" {
					return f[1]
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no leader for %s: %v\n%s", queue, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func short(node string) string { n, _, _ := strings.Cut(node, "@"); return n }
