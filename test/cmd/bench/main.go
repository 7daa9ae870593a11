// Command bench measures POST /scrape end to end against raw amqp091-go RPC on the same broker, in the
// same run, and prints throughput, latency percentiles and the system/raw ratio.
//
// The raw baseline does what the platform's transport does and nothing else: persistent messages into a
// quorum queue (same arguments as the task queue), publisher confirms, direct reply-to, and responders with
// the same number of consumers and prefetch as the workers, answering at once. The system run starts the
// real gateway and workers (as processes) and scrapes a trivial script through HTTP with a JWT.
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
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
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
	duration, warmup          time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "folder holding gateway-local and worker")
	flag.StringVar(&o.scripts, "scripts", "", "script folder for the workers (default: the suites' fixture scripts, from shared/scripttest)")
	flag.StringVar(&o.script, "script", "noop", "script to scrape")
	flag.StringVar(&o.url, "broker", envOr("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"), "AMQP URL")
	flag.IntVar(&o.concurrency, "c", 16, "concurrent callers")
	flag.IntVar(&o.workers, "workers", 2, "workers (and raw responders)")
	flag.IntVar(&o.slots, "slots", 4, "script slots per worker (WORKER_CONCURRENCY) and raw responder prefetch")
	flag.DurationVar(&o.duration, "d", 10*time.Second, "measured duration of each run")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up before each run")
	flag.Parse()
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
}

func (r result) throughput() float64 { return float64(r.n) / r.elapsed.Seconds() }

func (r result) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[min(len(r.latencies)-1, int(float64(len(r.latencies))*p))]
}

func run(ctx context.Context, o options, out io.Writer) error {
	fmt.Fprintf(out, "bench: %d callers, %d workers x %d slots, %s per run (after %s warm-up), script %q\n",
		o.concurrency, o.workers, o.slots, o.duration, o.warmup, o.script)
	// A wrong password or virtual host stops the bench at once, with the broker's reason.
	if err := broker.CheckLogin(ctx, o.url); err != nil {
		return err
	}
	raw, err := benchRaw(ctx, o)
	if err != nil {
		return fmt.Errorf("raw RPC: %w", err)
	}
	sys, err := benchSystem(ctx, o)
	if err != nil {
		return fmt.Errorf("system: %w", err)
	}
	fmt.Fprintf(out, "\n%-26s %12s %10s %10s %8s\n", "run", "requests/s", "p50", "p99", "errors")
	for _, r := range []result{raw, sys} {
		fmt.Fprintf(out, "%-26s %12.0f %10s %10s %8d\n", r.name, r.throughput(), r.pct(0.50).Round(10*time.Microsecond), r.pct(0.99).Round(10*time.Microsecond), r.errs)
	}
	fmt.Fprintf(out, "\nratio system/raw: throughput %.3f, p50 latency x%.1f, p99 latency x%.1f\n",
		sys.throughput()/raw.throughput(), float64(sys.pct(0.5))/float64(raw.pct(0.5)), float64(sys.pct(0.99))/float64(raw.pct(0.99)))
	printLegend(out)
	return nil
}

// drive runs call from c goroutines for warm-up plus d, recording latencies after the warm-up.
func drive(ctx context.Context, name string, c int, warmup, d time.Duration, call func(context.Context) error) result {
	var (
		mu   sync.Mutex
		lat  []time.Duration
		errs atomic.Int64
		n    atomic.Int64
		wg   sync.WaitGroup
	)
	startMeasure := time.Now().Add(warmup)
	end := startMeasure.Add(d)
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			for ctx.Err() == nil {
				t0 := time.Now()
				if t0.After(end) {
					break
				}
				err := call(ctx)
				t1 := time.Now()
				if t0.Before(startMeasure) {
					continue
				}
				if err != nil {
					errs.Add(1)
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
	slices.Sort(lat)
	return result{name: name, n: int(n.Load()), errs: int(errs.Load()), elapsed: d, latencies: lat}
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
func benchRaw(ctx context.Context, o options) (result, error) {
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

	// Responders: one connection each, like workers, replying at once.
	for range o.workers {
		conn, ch, err := openChannel(o.url)
		if err != nil {
			return result{}, err
		}
		defer conn.Close()
		if err := ch.Qos(o.slots, 0, false); err != nil {
			return result{}, err
		}
		ds, err := ch.Consume(topo.TaskQueue, "", false, false, false, false, nil)
		if err != nil {
			return result{}, err
		}
		go func() {
			for d := range ds {
				_ = ch.Publish("", d.ReplyTo, false, false, amqp.Publishing{CorrelationId: d.CorrelationId, Body: d.Body})
				_ = d.Ack(false)
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
	return drive(ctx, "raw amqp091 RPC", o.concurrency, o.warmup, o.duration, call), nil
}

// benchSystem starts the gateway and workers and measures POST /scrape.
func benchSystem(ctx context.Context, o options) (result, error) {
	secret := "bench-" + randomSuffix() + randomSuffix() + randomSuffix() + randomSuffix()
	queue := "bench-system-" + randomSuffix()
	work, err := os.MkdirTemp("", "bench-work-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(work)
	scripts, err := filepath.Abs(o.scripts)
	if err != nil {
		return result{}, err
	}
	if o.scripts == "" {
		scripts = filepath.Join(work, "scripts")
		if err := scripttest.Write(scripts, testkit.Scripts...); err != nil {
			return result{}, err
		}
	}
	addr, err := freeAddr()
	if err != nil {
		return result{}, err
	}
	env := append(os.Environ(),
		"RABBITMQ_URL="+o.url, "RABBITMQ_TASK_QUEUE="+queue, "JWT_SECRET="+secret,
		"SCRIPT_REPOSITORY_TYPE=local", "SCRIPT_REPOSITORY_URL="+scripts, "WORKER_WORK_DIR="+work,
		fmt.Sprintf("WORKER_CONCURRENCY=%d", o.slots), "LOG_LEVEL=warn")
	s, err := stack.Start(ctx, stack.Options{
		BinDir: o.bin, GatewayAddr: addr, Workers: o.workers, WorkerMetricsBasePort: 19400,
		Env: env, Output: io.Discard, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return result{}, err
	}
	defer func() {
		_ = s.Stop(30 * time.Second)
		if conn, err := amqp.Dial(o.url); err == nil {
			if ch, err := conn.Channel(); err == nil {
				topo := broker.NewTopology(queue)
				_, _ = ch.QueueDelete(topo.TaskQueue, false, false, false)
				_, _ = ch.QueueDelete(topo.DeadLetterQueue, false, false, false)
				_ = ch.ExchangeDelete(topo.DeadLetterExchange, false, false)
			}
			conn.Close()
		}
	}()
	token, err := auth.IssueHS256([]byte(secret), auth.Claims{Subject: "bench"}, time.Hour)
	if err != nil {
		return result{}, err
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: o.concurrency * 2}, Timeout: 30 * time.Second}
	body := fmt.Sprintf(`{"script_name":%q,"parameters":{},"timeout":10}`, o.script)
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
	return drive(ctx, "system POST /scrape", o.concurrency, o.warmup, o.duration, call), nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
