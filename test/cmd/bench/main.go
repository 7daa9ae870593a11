// Command bench measures POST /scrape end to end, in the same run, against raw amqp091-go RPC on the same
// broker (the trivial script: the platform's cost over its transport) and against the ideal throughput of
// I/O-bound scripts (callers / the time one call waits: how much of the waiting the platform overlaps), and
// prints throughput, latency percentiles and both ratios.
//
// The raw baseline does what the platform's transport does and nothing else: persistent messages into a
// quorum queue (same arguments as the task queue), publisher confirms, direct reply-to, and responders with
// the same number of consumers and prefetch as the workers, answering at once with a worker's guarantee: a
// reply confirmed by the broker before its task is acked. A second raw run answers unconfirmed (weaker),
// for reference. The system run starts the
// real gateway and workers (as processes) and scrapes a trivial script through HTTP with a JWT. The jobs
// runs (jobs.go) start another stack with a job store on a versitygw: async submit and poll against sync,
// and the throughput of claim-checked 10 MB results.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/local/stack"
	"github.com/scrapeplatform/platform/shared/auth"
	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/scripttest"
	"github.com/scrapeplatform/platform/test/testkit"
)

type options struct {
	bin, scripts, url, script string
	concurrency, workers      int
	slots                     int
	only                      string
	duration, warmup          time.Duration
	callers                   int
	// logs receives what the stacks' processes write (their logs); io.Discard without -log.
	logs     io.Writer
	logLevel string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "folder holding gateway-local and worker")
	flag.StringVar(&o.scripts, "scripts", "", "script folder for the workers (default: the suites' fixture scripts, from shared/scripttest)")
	flag.StringVar(&o.script, "script", "noop", "script of the trivial scenario (noop_threads: noop under \"isolation\": \"threads\")")
	flag.StringVar(&o.url, "broker", envOr("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"), "AMQP URL")
	flag.IntVar(&o.concurrency, "c", 32, "concurrent callers of the raw baseline and the trivial script")
	flag.IntVar(&o.workers, "workers", 2, "workers (and raw responders)")
	flag.IntVar(&o.slots, "slots", 0, "WORKER_CONCURRENCY of the workers and the raw responders' prefetch (0: the worker's default; raw 256)")
	flag.StringVar(&o.only, "only", "", "comma-separated parts of scenario names to run (default: all): trivial, async 200ms, async 2s, blocking, fetch, threads, cpu-bound, jobs")
	flag.DurationVar(&o.duration, "d", 8*time.Second, "measured duration of each run")
	flag.IntVar(&o.callers, "callers", 0, "callers of every system scenario (0: each scenario's own; ideal/s follows)")
	flag.DurationVar(&o.warmup, "warmup", 5*time.Second, "unmeasured warm-up before each run (a script's first calls start its runners: a burst of cold starts that is not the steady state)")
	logPath := flag.String("log", "", "file to write the gateways' and workers' logs to (default: discarded)")
	flag.StringVar(&o.logLevel, "log-level", "warn", "LOG_LEVEL of the gateways and workers")
	flag.Parse()
	o.logs = io.Discard
	if *logPath != "" {
		f, err := os.Create(*logPath)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		defer f.Close()
		o.logs = f // *os.File is safe for the processes' concurrent copiers
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// result is one run's figures.
type result struct {
	name      string
	n, errs   int
	elapsed   time.Duration
	latencies []time.Duration
	// firstErrs are up to three of the errors, to say what failed.
	firstErrs []string
	// starts is the workers' warm runner starts during the run (warm-up included) and how long they took
	// in all (scraping_warm_runner_start_duration_seconds); system runs only.
	starts    starts
	hasStarts bool
	// warm is how long the warm-up lasted (a settled run's varies).
	warm time.Duration
	// cpu is what each role used during the measured period (nil without a probe or when /proc could not
	// be read); cpus is the machine's CPU count, for its idle share.
	cpu  *cpuParts
	cpus float64
}

// starts is the count and total duration of warm runner starts.
type starts struct {
	n       float64
	seconds float64
}

func (s starts) minus(o starts) starts { return starts{n: s.n - o.n, seconds: s.seconds - o.seconds} }

func (r result) throughput() float64 { return float64(r.n) / r.elapsed.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[min(len(r.latencies)-1, int(float64(len(r.latencies))*p))]
}

func run(ctx context.Context, o options, out io.Writer) error {
	only := func(name string) bool {
		return o.only == "" || slices.ContainsFunc(strings.Split(o.only, ","), func(p string) bool { return strings.Contains(name, strings.TrimSpace(p)) })
	}
	fmt.Fprintf(out, "bench: %d workers (WORKER_CONCURRENCY %s), %s per run (after %s warm-up); raw baseline and trivial script with %d callers\n",
		o.workers, slotsLabel(o.slots), o.duration, o.warmup, o.concurrency)
	// A wrong password or virtual host stops the bench at once, with the broker's reason.
	if err := broker.CheckLogin(ctx, o.url); err != nil {
		return err
	}
	rawSlots := o.slots
	if rawSlots <= 0 {
		rawSlots = 256
	}
	raw, err := benchRaw(ctx, o, rawSlots, "raw amqp091 RPC", o.concurrency, 0, true)
	if err != nil {
		return fmt.Errorf("raw RPC: %w", err)
	}
	rawUnconfirmed, err := benchRaw(ctx, o, rawSlots, rawUnconfirmedName, o.concurrency, 0, false)
	if err != nil {
		return fmt.Errorf("raw RPC, unconfirmed replies: %w", err)
	}
	// The transport alone under blocking 200ms x32's pattern: what its ratio can be at best here.
	var rawWait *result
	if only("blocking 200ms x32") {
		r, err := benchRaw(ctx, o, rawSlots, rawWaitName, rawWaitCallers, rawWaitDelay, true)
		if err != nil {
			return fmt.Errorf("raw RPC with a wait: %w", err)
		}
		rawWait = &r
	}
	ran, results, peaks, err := benchSystem(ctx, o, only)
	if err != nil {
		return fmt.Errorf("system: %w", err)
	}
	var jobs []jobsResult
	if only("jobs") {
		if jobs, err = benchJobs(ctx, o); err != nil {
			return fmt.Errorf("jobs: %w", err)
		}
	}
	fmt.Fprintf(out, "\n%-34s %12s %10s %10s %8s %10s %8s %9s %7s %9s\n", "run", "requests/s", "p50", "p99", "errors", "ideal/s", "ratio", "peak RSS", "starts", "avg start")
	row := func(r result, ideal, ratio string, rss string) {
		n, avg := "-", "-"
		if r.hasStarts {
			n = fmt.Sprintf("%.0f", r.starts.n)
			if r.starts.n > 0 {
				avg = (time.Duration(r.starts.seconds / r.starts.n * float64(time.Second))).Round(time.Millisecond).String()
			}
		}
		fmt.Fprintf(out, "%-34s %12.0f %10s %10s %8d %10s %8s %9s %7s %9s\n", r.name, r.throughput(), r.pct(0.50).Round(10*time.Microsecond), r.pct(0.99).Round(10*time.Microsecond), r.errs, ideal, ratio, rss, n, avg)
	}
	row(raw, "-", "-", "-")
	row(rawUnconfirmed, "-", "-", "-")
	if rawWait != nil {
		ideal := float64(rawWaitCallers) / rawWaitDelay.Seconds()
		row(*rawWait, fmt.Sprintf("%.0f", ideal), fmt.Sprintf("%.3f", rawWait.throughput()/ideal), "-")
	}
	for i, sc := range ran {
		r := results[i]
		ideal, ratio, rss := "-", "-", "-"
		if sc.wait > 0 {
			ideal, ratio = fmt.Sprintf("%.0f", sc.ideal()), fmt.Sprintf("%.3f", r.throughput()/sc.ideal())
		} else if raw.throughput() > 0 {
			ratio = fmt.Sprintf("%.3f", r.throughput()/raw.throughput())
		}
		if sc.rss {
			rss = fmt.Sprintf("%.0f MiB", float64(peaks[i])/(1<<20))
		}
		row(r, ideal, ratio, rss)
	}
	for i, sc := range ran {
		if sc.settle {
			fmt.Fprintf(out, "%s: measured after a warm-up of %s (until no warm runner had started for %s)\n",
				results[i].name, results[i].warm.Round(100*time.Millisecond), settleQuiet)
		}
	}
	for i, sc := range ran {
		if sc.wait == 0 && rawUnconfirmed.throughput() > 0 {
			fmt.Fprintf(out, "%s against %s: %.3f\n", results[i].name, rawUnconfirmedName, results[i].throughput()/rawUnconfirmed.throughput())
		}
	}
	all := []result{raw, rawUnconfirmed}
	if rawWait != nil {
		all = append(all, *rawWait)
	}
	for _, r := range append(all, results...) {
		for _, e := range r.firstErrs {
			if len(e) > 300 {
				e = e[:300] + "…"
			}
			fmt.Fprintf(out, "error in %s: %s\n", r.name, e)
		}
	}
	printCPU(out, append(all, results...))
	printJobs(out, jobs)
	printLegend(out)
	return nil
}

// rawUnconfirmedName names the raw run whose responders publish replies unconfirmed and ack at once: a
// weaker guarantee than a worker's (a reply may be lost after its task was acked), printed for reference.
const rawUnconfirmedName = "raw RPC, unconfirmed replies"

// The raw RPC run with blocking 200ms x32's pattern: 32 callers, responders that answer after 200 ms.
const (
	rawWaitName    = "raw amqp091 RPC 200ms x32"
	rawWaitCallers = 32
	rawWaitDelay   = 200 * time.Millisecond
)

func slotsLabel(n int) string {
	if n <= 0 {
		return "default"
	}
	return strconv.Itoa(n)
}

// drive runs call from c goroutines for warm-up plus d, recording latencies after the warm-up. With a
// settled function, the warm-up goes on past warmup, checked every second, until settled says so (or
// settleMax has passed); result.warm is how long it took.
func drive(ctx context.Context, name string, c int, warmup, d time.Duration, settled func() bool, probe *cpuProbe, call func(context.Context) error) result {
	var (
		mu        sync.Mutex
		firstErrs []string
		lat       []time.Duration
		errs      atomic.Int64
		n         atomic.Int64
		wg        sync.WaitGroup
		measure   atomic.Int64 // when measuring starts, Unix nanoseconds; until it is known, never
	)
	begin := time.Now()
	measure.Store(math.MaxInt64)
	if settled == nil {
		measure.Store(begin.Add(warmup).UnixNano())
	} else {
		go func() {
			wait := warmup
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
				if settled() || time.Since(begin) >= settleMax {
					break
				}
				wait = time.Second
			}
			measure.Store(time.Now().UnixNano())
		}()
	}
	// The probe reads the CPU through the measured period.
	var cpu *cpuParts
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		if probe == nil {
			return
		}
		for measure.Load() == math.MaxInt64 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		from := time.Unix(0, measure.Load())
		time.Sleep(time.Until(from))
		if used, err := probe.measure(ctx, from.Add(d)); err == nil {
			cpu = &used
		}
	}()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				t0 := time.Now()
				from := measure.Load()
				if from != math.MaxInt64 && t0.After(time.Unix(0, from).Add(d)) {
					break
				}
				err := call(ctx)
				t1 := time.Now()
				if t0.UnixNano() < from {
					continue
				}
				if err != nil {
					if errs.Add(1) <= 3 {
						mu.Lock()
						firstErrs = append(firstErrs, err.Error())
						mu.Unlock()
					}
					continue
				}
				n.Add(1)
				local = append(local, t1.Sub(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	<-probed
	slices.Sort(lat)
	return result{name: name, n: int(n.Load()), errs: int(errs.Load()), elapsed: d, latencies: lat, firstErrs: firstErrs,
		warm: time.Unix(0, measure.Load()).Sub(begin), cpu: cpu, cpus: float64(runtime.NumCPU())}
}

// settleMax bounds a settled run's warm-up.
const settleMax = 90 * time.Second

// settleQuiet is how long no warm runner may have started for a settled run's warm-up to end.
const settleQuiet = 3 * time.Second

// noStartsFor returns a settled function for drive: true once the workers at urls have counted no new warm
// runner start for quiet (read from their metrics each time it is called).
func noStartsFor(ctx context.Context, urls []string, quiet time.Duration) func() bool {
	last, since := -1.0, time.Now()
	return func() bool {
		s, err := runnerStarts(ctx, urls)
		if err != nil {
			return false
		}
		if s.n != last {
			last, since = s.n, time.Now()
		}
		return time.Since(since) >= quiet
	}
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// openChannel dials url and opens a channel on the new connection; closing the connection closes both.
func openChannel(url string) (*amqp.Connection, *amqp.Channel, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, ch, nil
}

// benchRaw measures plain amqp091-go RPC: no HTTP, no JSON validation, no child process.
func benchRaw(ctx context.Context, o options, prefetch int, name string, callers int, delay time.Duration, confirmReplies bool) (result, error) {
	topo := broker.NewTopology("bench-raw-" + randomSuffix())
	admin, ach, err := openChannel(o.url)
	if err != nil {
		return result{}, err
	}
	defer admin.Close()
	if err := topo.Declare(ach); err != nil {
		return result{}, err
	}
	defer func() {
		_, _ = ach.QueueDelete(topo.TaskQueue, false, false, false)
		_, _ = ach.QueueDelete(topo.DeadLetterQueue, false, false, false)
		_ = ach.ExchangeDelete(topo.DeadLetterExchange, false, false)
	}()

	// Responders: one connection each, like workers, replying at once (or after delay, each delivery on a
	// timer of its own, as a worker runs many scrapes at once). With confirmReplies a responder settles a
	// task as a worker does (broker.Task.Settle): it publishes the reply on a confirming channel of its own,
	// waits for the broker's confirm, and only then acks the task, each delivery in a goroutine of its own;
	// without, it publishes the reply unconfirmed on the consuming channel and acks at once.
	for range o.workers {
		conn, ch, err := openChannel(o.url)
		if err != nil {
			return result{}, err
		}
		defer conn.Close()
		if err := ch.Qos(prefetch, 0, false); err != nil {
			return result{}, err
		}
		pub := ch
		if confirmReplies {
			if pub, err = conn.Channel(); err != nil {
				return result{}, err
			}
			if err := pub.Confirm(false); err != nil {
				return result{}, err
			}
		}
		ds, err := ch.Consume(topo.TaskQueue, "", false, false, false, false, nil)
		if err != nil {
			return result{}, err
		}
		go func() {
			for d := range ds {
				reply := func() {
					msg := amqp.Publishing{CorrelationId: d.CorrelationId, Body: d.Body}
					if !confirmReplies {
						_ = pub.Publish("", d.ReplyTo, false, false, msg)
						_ = d.Ack(false)
						return
					}
					dc, err := pub.PublishWithDeferredConfirm("", d.ReplyTo, false, false, msg)
					if err == nil && dc.Wait() {
						_ = d.Ack(false)
					} else {
						_ = d.Nack(false, true)
					}
				}
				switch {
				case delay > 0:
					time.AfterFunc(delay, reply)
				case confirmReplies:
					go reply()
				default:
					reply()
				}
			}
		}()
	}

	// Caller: one connection, one confirming channel, direct reply-to, replies matched by correlation id.
	conn, ch, err := openChannel(o.url)
	if err != nil {
		return result{}, err
	}
	defer conn.Close()
	if err := ch.Confirm(false); err != nil {
		return result{}, err
	}
	replies, err := ch.Consume(contract.DirectReplyTo, "", true, false, false, false, nil)
	if err != nil {
		return result{}, err
	}
	var mu sync.Mutex
	waiting := map[string]chan struct{}{}
	go func() {
		for d := range replies {
			mu.Lock()
			w := waiting[d.CorrelationId]
			delete(waiting, d.CorrelationId)
			mu.Unlock()
			if w != nil {
				close(w)
			}
		}
	}()
	body := []byte(`{"version":1,"request_id":"x","script_name":"noop","parameters":{},"timeout":5}`)
	var seq atomic.Int64
	call := func(ctx context.Context) error {
		id := fmt.Sprintf("raw-%d", seq.Add(1))
		w := make(chan struct{})
		mu.Lock()
		waiting[id] = w
		mu.Unlock()
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", topo.TaskQueue, true, false, amqp.Publishing{
			CorrelationId: id, ReplyTo: contract.DirectReplyTo, DeliveryMode: amqp.Persistent, Expiration: "10000", Body: body})
		if err != nil {
			return err
		}
		if ok, err := dc.WaitContext(ctx); err != nil || !ok {
			return errors.New("not confirmed")
		}
		select {
		case <-w:
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("no reply")
		}
	}
	probe := &cpuProbe{roles: cpuRoles{self: os.Getpid()}, root: "/"}
	return drive(ctx, name, callers, o.warmup, o.duration, nil, probe, call), nil
}

// scenario is one system run: callers scraping one script with the same parameters. wait is what one call
// waits (its ideal latency); the ideal throughput is callers/wait. A scenario without a wait (the trivial
// script) is compared with the raw RPC baseline instead.
type scenario struct {
	name    string
	script  string
	params  string
	callers int
	wait    time.Duration
	timeout int
	// rss samples the workers' and their runners' memory during the run.
	rss bool
	// settle extends the warm-up until no warm runner has started for settleQuiet: the steady state, once
	// the script's runners are up (a "settled" copy of a scenario whose starts outlast the fixed warm-up).
	settle bool
}

func (sc scenario) ideal() float64 { return float64(sc.callers) / sc.wait.Seconds() }

// scenarios are issue 12's goals, in the order make bench prints them.
func scenarios(o options, page string) []scenario {
	return []scenario{
		{name: "trivial", script: o.script, params: `{}`, callers: o.concurrency, timeout: 10},
		{name: "async 200ms x64", script: "async_shared", params: `{"sleep":0.2}`, callers: 64, wait: 200 * time.Millisecond, timeout: 10},
		{name: "async 2s x1000", script: "async_shared", params: `{"sleep":2}`, callers: 1000, wait: 2 * time.Second, timeout: 20, rss: true},
		{name: "blocking 200ms x32", script: "sleeper", params: `{"seconds":0.2}`, callers: 32, wait: 200 * time.Millisecond, timeout: 10, settle: true},
		{name: "blocking 200ms x32 threads", script: "sleeper" + threadsSuffix, params: `{"seconds":0.2}`, callers: 32, wait: 200 * time.Millisecond, timeout: 10},
		{name: "fetch 200ms x64", script: "fetch", params: fmt.Sprintf(`{"url":%q}`, page), callers: 64, wait: 200 * time.Millisecond, timeout: 10},
		{name: "fetch 200ms x64 settled", script: "fetch", params: fmt.Sprintf(`{"url":%q}`, page), callers: 64, wait: 200 * time.Millisecond, timeout: 10, settle: true},
		{name: "fetch 200ms x64 threads", script: "fetch" + threadsSuffix, params: fmt.Sprintf(`{"url":%q}`, page), callers: 64, wait: 200 * time.Millisecond, timeout: 10},
		// CPU-bound: each call burns 50 ms of CPU, 4 callers. Its wait is what one call would take if the
		// machine's CPUs were shared evenly between the callers and did nothing else (callers × 50 ms ÷
		// CPUs), so ideal/s is what the CPUs allow: 2 ÷ 50 ms = 40/s on 2 cores.
		{name: "cpu-bound 50ms x4", script: "cpu_burn", params: `{"cpu":0.05}`, callers: 4,
			wait: time.Duration(4*50/runtime.NumCPU()) * time.Millisecond, timeout: 10},
	}
}

// threadsSuffix names the copy of a blocking fixture whose manifest asks for "isolation": "threads".
const threadsSuffix = "_threads"

// addThreadsCopies copies each blocking fixture that a scenario runs in threads into dir/<name>_threads,
// with a manifest.json that asks for "isolation": "threads": the same code, run a thread per call.
func addThreadsCopies(dir string, names ...string) error {
	for _, name := range names {
		to := filepath.Join(dir, name+threadsSuffix)
		if err := os.CopyFS(to, os.DirFS(filepath.Join(dir, name))); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, "manifest.json"), []byte(`{"isolation":"threads"}`), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// slowPage serves a page that answers after 200 ms: a stand-in for a remote site a scrape fetches.
func slowPage() (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		_, _ = io.WriteString(w, "<html><body><h1>a page</h1></body></html>")
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/page", func() { _ = srv.Close() }, nil
}

// benchSystem starts the gateway and workers once and runs every selected scenario through POST /scrape.
func benchSystem(ctx context.Context, o options, only func(string) bool) ([]scenario, []result, []int64, error) {
	if !slices.ContainsFunc(scenarios(o, ""), func(sc scenario) bool { return only(sc.name) }) {
		return nil, nil, nil, nil
	}
	secret := "bench-" + randomSuffix() + randomSuffix() + randomSuffix() + randomSuffix()
	queue := "bench-system-" + randomSuffix()
	work, err := os.MkdirTemp("", "bench-work-")
	if err != nil {
		return nil, nil, nil, err
	}
	defer os.RemoveAll(work)
	scripts, err := filepath.Abs(o.scripts)
	if err != nil {
		return nil, nil, nil, err
	}
	if o.scripts == "" {
		scripts = filepath.Join(work, "scripts")
		if err := scripttest.Write(scripts, append(slices.Clone(testkit.Scripts), "async_shared", "fetch", "cpu_burn")...); err != nil {
			return nil, nil, nil, err
		}
		if err := addThreadsCopies(scripts, "sleeper", "fetch", "noop"); err != nil {
			return nil, nil, nil, err
		}
	}
	page, stopPage, err := slowPage()
	if err != nil {
		return nil, nil, nil, err
	}
	defer stopPage()
	addr, err := freeAddr()
	if err != nil {
		return nil, nil, nil, err
	}
	pageHost := strings.SplitN(strings.TrimPrefix(page, "http://"), "/", 2)[0]
	env := append(os.Environ(),
		"RABBITMQ_URL="+o.url, "RABBITMQ_TASK_QUEUE="+queue, "JWT_SECRET="+secret,
		"SCRIPT_REPOSITORY_TYPE=local", "SCRIPT_REPOSITORY_URL="+scripts, "WORKER_WORK_DIR="+work,
		"EGRESS_ALLOW="+pageHost, "GATEWAY_MAX_CONNECTIONS=4096", "LOG_LEVEL="+o.logLevel)
	if o.slots > 0 {
		env = append(env, fmt.Sprintf("WORKER_CONCURRENCY=%d", o.slots))
	}
	s, err := stack.Start(ctx, stack.Options{
		BinDir: o.bin, GatewayAddr: addr, Workers: o.workers, WorkerMetricsBasePort: 19400,
		Env: env, Output: o.logs, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, nil, nil, err
	}
	defer func() {
		_ = s.Stop(30 * time.Second)
		if conn, err := amqp.Dial(o.url); err == nil {
			if ch, err := conn.Channel(); err == nil {
				topo := broker.NewTopology(queue)
				_, _ = ch.QueueDelete(topo.TaskQueue, false, false, false)
				_, _ = ch.QueueDelete(topo.DeadLetterQueue, false, false, false)
				_ = ch.ExchangeDelete(topo.DeadLetterExchange, false, false)
				_ = ch.ExchangeDelete(topo.CancelExchange, false, false)
			}
			conn.Close()
		}
	}()
	token, err := auth.IssueHS256([]byte(secret), auth.Claims{Subject: "bench"}, time.Hour)
	if err != nil {
		return nil, nil, nil, err
	}
	var workers, gateway []int
	for _, p := range s.Processes() {
		switch {
		case strings.HasPrefix(p.Name(), "worker"):
			workers = append(workers, p.Pid())
		case p.Name() == "gateway":
			gateway = append(gateway, p.Pid())
		}
	}
	probe := &cpuProbe{roles: cpuRoles{gateway: gateway, workers: workers, self: os.Getpid()}, root: "/"}
	var ran []scenario
	var results []result
	var peaks []int64
	for _, sc := range scenarios(o, page) {
		if !only(sc.name) {
			continue
		}
		if o.callers > 0 {
			sc.callers = o.callers
		}
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: sc.callers * 2, MaxConnsPerHost: sc.callers * 2}, Timeout: time.Duration(sc.timeout+10) * time.Second}
		body := fmt.Sprintf(`{"script_name":%q,"parameters":%s,"timeout":%d}`, sc.script, sc.params, sc.timeout)
		call := func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, "POST", s.GatewayURL()+"/scrape", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.Contains(string(b), `"status":"completed"`) {
				return fmt.Errorf("%d %s", resp.StatusCode, b)
			}
			return nil
		}
		var peak atomic.Int64
		stopRSS := make(chan struct{})
		rssDone := make(chan struct{})
		go func() {
			defer close(rssDone)
			for sc.rss {
				peak.Store(max(peak.Load(), treeRSS(workers)))
				select {
				case <-stopRSS:
					return
				case <-time.After(250 * time.Millisecond):
				}
			}
		}()
		before, beforeErr := runnerStarts(ctx, s.WorkerMetricsURLs())
		var settled func() bool
		if sc.settle {
			settled = noStartsFor(ctx, s.WorkerMetricsURLs(), settleQuiet)
		}
		r := drive(ctx, "system "+sc.name, sc.callers, o.warmup, o.duration, settled, probe, call)
		if after, err := runnerStarts(ctx, s.WorkerMetricsURLs()); err == nil && beforeErr == nil {
			r.starts, r.hasStarts = after.minus(before), true
		}
		close(stopRSS)
		<-rssDone
		client.CloseIdleConnections()
		ran, results, peaks = append(ran, sc), append(results, r), append(peaks, peak.Load())
		if ctx.Err() != nil {
			return ran, results, peaks, ctx.Err()
		}
	}
	return ran, results, peaks, nil
}

// startsMetric is the workers' histogram of warm runner starts.
const startsMetric = "scraping_warm_runner_start_duration_seconds"

// runnerStarts sums the warm runner starts the workers at urls have counted, and their durations.
func runnerStarts(ctx context.Context, urls []string) (starts, error) {
	var total starts
	for _, u := range urls {
		req, err := http.NewRequestWithContext(ctx, "GET", u+"/metrics", nil)
		if err != nil {
			return starts{}, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return starts{}, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return starts{}, err
		}
		if resp.StatusCode != http.StatusOK {
			return starts{}, fmt.Errorf("GET %s/metrics: %s", u, resp.Status)
		}
		got := parseStarts(string(b))
		total.n, total.seconds = total.n+got.n, total.seconds+got.seconds
	}
	return total, nil
}

// parseStarts reads the count and sum of the warm runner start histogram from a Prometheus text exposition
// (no labels: the worker exports one series).
func parseStarts(text string) starts {
	var s starts
	for line := range strings.Lines(text) {
		name, value, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		switch name {
		case startsMetric + "_count":
			s.n += v
		case startsMetric + "_sum":
			s.seconds += v
		}
	}
	return s
}

// treeRSS sums the resident memory (bytes) of the given processes and all their descendants.
func treeRSS(roots []int) int64 {
	children := map[int][]int{}
	rss := map[int]int64{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(b)) {
			f := strings.Fields(line)
			switch {
			case len(f) >= 2 && f[0] == "PPid:":
				ppid, _ := strconv.Atoi(f[1])
				children[ppid] = append(children[ppid], pid)
			case len(f) >= 2 && f[0] == "VmRSS:":
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				rss[pid] = kb << 10
			}
		}
	}
	var sum int64
	seen := map[int]bool{}
	stack := slices.Clone(roots)
	for len(stack) > 0 {
		pid := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[pid] {
			continue
		}
		seen[pid] = true
		sum += rss[pid]
		stack = append(stack, children[pid]...)
	}
	return sum
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
