package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/local/stack"
	"github.com/scrapeplatform/platform/shared/auth"
	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/s3test"
	"github.com/scrapeplatform/platform/shared/scripttest"
	"github.com/scrapeplatform/platform/shared/webhook"
	"github.com/scrapeplatform/platform/test/testkit"
)

// The jobs part of the bench (issue 10): what a job costs a caller over a sync scrape, and how fast results
// too large for a broker message (claim-checked in the job store, fetched through data_url) move.
const (
	// jobsCallers call at once in every jobs run: few, so the latencies show the job's own cost rather than
	// queueing behind other callers.
	jobsCallers = 4
	// bigResultBytes is the claim-checked result's size: 10 MB, above GATEWAY_INLINE_RESULT_MB (5), so the
	// answer carries a data_url.
	bigResultBytes = 10_000_000
	// jobsMetricsBasePort is the first worker metrics port of the jobs stack (the system runs' is 19400).
	jobsMetricsBasePort = 19500
)

// jobsResult is one jobs run: its latencies and the result bytes it moved.
type jobsResult struct {
	result
	bytes int64
}

// benchJobs starts a versitygw with a jobs bucket and a gateway and workers with that job store, then runs:
// sync (POST /scrape of the trivial script, answered 200 within the sync window), async + poll (Prefer:
// respond-async, 202, then GET /jobs/{id} every 50 ms until final), async + long poll (the same with
// ?wait=20) and 10 MB results (a script returning 10 MB: 200 with data_url, then the download).
func benchJobs(ctx context.Context, o options) ([]jobsResult, error) {
	work, err := os.MkdirTemp("", "bench-jobs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	scripts, err := filepath.Abs(o.scripts)
	if err != nil {
		return nil, err
	}
	if o.scripts == "" {
		scripts = filepath.Join(work, "scripts")
		if err := scripttest.Write(scripts, append(slices.Clone(testkit.Scripts), "huge_result")...); err != nil {
			return nil, err
		}
	}
	root, err := s3test.RepoRoot()
	if err != nil {
		return nil, err
	}
	bin, err := stack.LookVersityGW(os.Getenv("VERSITYGW"), root)
	if err != nil {
		return nil, err
	}
	s3Addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s3, err := stack.StartS3(ctx, stack.S3Options{Binary: bin, Addr: s3Addr, Dir: filepath.Join(work, "s3"), Bucket: "jobs",
		AccessKey: "benchaccess", SecretKey: "bench-secret-" + randomSuffix() + randomSuffix(), Output: io.Discard})
	if err != nil {
		return nil, fmt.Errorf("S3 server: %w", err)
	}
	defer func() { _ = s3.Stop(10 * time.Second) }()

	secret := "bench-" + randomSuffix() + randomSuffix() + randomSuffix() + randomSuffix()
	queue := "bench-jobs-" + randomSuffix()
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	env := append(os.Environ(),
		"RABBITMQ_URL="+o.url, "RABBITMQ_TASK_QUEUE="+queue, "JWT_SECRET="+secret,
		"SCRIPT_REPOSITORY_TYPE=local", "SCRIPT_REPOSITORY_URL="+scripts, "WORKER_WORK_DIR="+filepath.Join(work, "worker"),
		"GATEWAY_MAX_CONNECTIONS=4096", "LOG_LEVEL=warn")
	env = append(env, s3.JobEnv("jobs")...)
	if o.slots > 0 {
		env = append(env, fmt.Sprintf("WORKER_CONCURRENCY=%d", o.slots))
	}
	s, err := stack.Start(ctx, stack.Options{
		BinDir: o.bin, GatewayAddr: addr, Workers: o.workers, WorkerMetricsBasePort: jobsMetricsBasePort,
		Env: env, Output: o.logs, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		_ = s.Stop(30 * time.Second)
		deleteJobsTopology(o.url, queue)
	}()
	token, err := auth.IssueHS256([]byte(secret), auth.Claims{Subject: "bench"}, time.Hour)
	if err != nil {
		return nil, err
	}
	c := &jobsClient{base: s.GatewayURL(), token: token,
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4 * jobsCallers}, Timeout: 2 * time.Minute}}

	trivial := fmt.Sprintf(`{"script_name":%q,"parameters":{},"timeout":10}`, o.script)
	big := fmt.Sprintf(`{"script_name":"huge_result","parameters":{"bytes":%d},"timeout":60}`, bigResultBytes)
	runs := []struct {
		name string
		call func(ctx context.Context) (int64, error)
	}{
		{"jobs sync", func(ctx context.Context) (int64, error) { return c.scrape(ctx, trivial, false, 0) }},
		{"jobs async + poll 50ms", func(ctx context.Context) (int64, error) {
			return c.scrape(ctx, trivial, true, 50*time.Millisecond)
		}},
		{"jobs async + long poll", func(ctx context.Context) (int64, error) { return c.scrape(ctx, trivial, true, 0) }},
		{"jobs 10 MB claim-checked", func(ctx context.Context) (int64, error) { return c.scrape(ctx, big, false, 0) }},
	}
	var out []jobsResult
	for _, r := range runs {
		var moved atomic.Int64
		res := drive(ctx, r.name, jobsCallers, o.warmup, o.duration, nil, nil, func(ctx context.Context) error {
			n, err := r.call(ctx)
			moved.Add(n)
			return err
		})
		out = append(out, jobsResult{result: res, bytes: moved.Load()})
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
	return out, nil
}

// jobsClient scrapes the gateway as a jobs client does.
type jobsClient struct {
	base, token string
	http        *http.Client
}

// jobAnswer is what the bench reads of a scrape's or a job's answer.
type jobAnswer struct {
	RequestID  string          `json:"request_id"`
	Status     string          `json:"status"`
	Data       json.RawMessage `json:"data"`
	DataURL    string          `json:"data_url"`
	ResultSize int64           `json:"result_size"`
}

func (c *jobsClient) get(ctx context.Context, method, url, body string, header ...string) (int, jobAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return 0, jobAnswer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, jobAnswer{}, err
	}
	defer resp.Body.Close()
	var a jobAnswer
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		err = json.Unmarshal(b, &a)
	}
	if err != nil {
		return resp.StatusCode, a, fmt.Errorf("%s %s: %d: %w", method, url, resp.StatusCode, err)
	}
	return resp.StatusCode, a, nil
}

// scrape submits body (with Prefer: respond-async when async), follows a 202 to the job's end (GET every
// poll, or long polls when poll is 0), downloads a data_url, and returns the result bytes it received.
func (c *jobsClient) scrape(ctx context.Context, body string, async bool, poll time.Duration) (int64, error) {
	var header []string
	if async {
		header = []string{"Prefer", "respond-async"}
	}
	code, a, err := c.get(ctx, "POST", c.base+"/scrape", body, header...)
	if err != nil {
		return 0, err
	}
	for code == http.StatusAccepted || (code == http.StatusOK && (a.Status == "queued" || a.Status == "running")) {
		url := c.base + "/jobs/" + a.RequestID
		if poll > 0 {
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(poll):
			}
		} else {
			url += "?wait=20"
		}
		if code, a, err = c.get(ctx, "GET", url, ""); err != nil {
			return 0, err
		}
	}
	if code != http.StatusOK || a.Status != "completed" {
		return 0, fmt.Errorf("job %s: %d %s", a.RequestID, code, a.Status)
	}
	if a.DataURL == "" {
		return int64(len(a.Data)), nil
	}
	req, err := http.NewRequestWithContext(ctx, "GET", a.DataURL, nil)
	if err != nil {
		return 0, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil && (resp.StatusCode != http.StatusOK || n != a.ResultSize) {
		err = fmt.Errorf("data_url: %d, %d bytes of %d", resp.StatusCode, n, a.ResultSize)
	}
	return n, err
}

// printJobs writes the jobs table: each run's jobs/s, latencies, the p50 added over the sync run, and MB/s
// of results received.
func printJobs(out io.Writer, runs []jobsResult) {
	if len(runs) == 0 {
		return
	}
	fmt.Fprintf(out, "\n%-30s %8s %10s %10s %8s %10s %8s\n", "jobs", "jobs/s", "p50", "p99", "errors", "added p50", "MB/s")
	sync := runs[0].pct(0.50)
	for i, r := range runs {
		added := "-"
		if i > 0 && !strings.Contains(r.name, "MB") {
			added = (r.pct(0.50) - sync).Round(100 * time.Microsecond).String()
		}
		mbs := "-"
		if strings.Contains(r.name, "MB") {
			mbs = fmt.Sprintf("%.1f", float64(r.bytes)/1e6/r.elapsed.Seconds())
		}
		fmt.Fprintf(out, "%-30s %8.1f %10s %10s %8d %10s %8s\n", r.name, r.throughput(), r.pct(0.50).Round(100*time.Microsecond),
			r.pct(0.99).Round(100*time.Microsecond), r.errs, added, mbs)
	}
}

// deleteJobsTopology removes the bench queue's topology, the jobs' queues included.
func deleteJobsTopology(url, queue string) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	topo := broker.NewTopology(queue)
	wh := webhook.NewQueues(queue)
	queues := []string{topo.TaskQueue, topo.DeadLetterQueue, topo.LeaseQueue(), wh.Main, wh.Dead}
	for _, d := range webhook.DefaultSchedule().DelayLevels() {
		queues = append(queues, wh.Delay(d))
	}
	for _, q := range queues {
		_, _ = ch.QueueDelete(q, false, false, false)
	}
	_ = ch.ExchangeDelete(topo.DeadLetterExchange, false, false)
	_ = ch.ExchangeDelete(topo.CancelExchange, false, false)
}
