package task

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/brokertest"
	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/job"
	"github.com/scrapeplatform/platform/shared/proctest"
	"github.com/scrapeplatform/platform/shared/s3test"
	"github.com/scrapeplatform/platform/shared/scripttest"
	"github.com/scrapeplatform/platform/shared/testlog"
	"github.com/scrapeplatform/platform/worker/internal/repository"
	"github.com/scrapeplatform/platform/worker/internal/runner"
)

// The job tests run the real thing: RabbitMQ (brokertest), versitygw (s3test), Python scripts in the real
// runner (scripttest fixtures), a consumer, a publisher, a leaser and a cancel listener wired as cmd/worker
// wires them.

// jobRecorder is the JobMetrics of the tests.
type jobRecorder struct {
	mu     sync.Mutex
	counts map[string]float64
}

func (r *jobRecorder) add(key string, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts == nil {
		r.counts = map[string]float64{}
	}
	r.counts[key] += v
}

func (r *jobRecorder) get(key string) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[key]
}

func (r *jobRecorder) JobFinished(status string, _ time.Duration) { r.add("finished "+status, 1) }
func (r *jobRecorder) ResultStored(storage string, n int64) {
	r.add("results "+storage, 1)
	r.add("bytes "+storage, float64(n))
}

// callbackLog is the Callbacks of the tests.
type callbackLog struct {
	mu   sync.Mutex
	jobs []job.Job
}

func (c *callbackLog) Enqueue(_ context.Context, j job.Job) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.jobs = append(c.jobs, j)
	return nil
}

func (c *callbackLog) all() []job.Job {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]job.Job(nil), c.jobs...)
}

type stackOptions struct {
	// lease is the lease period (0: no leaser); consumerTimeout and leaseMargin set the leasing threshold.
	lease, consumerTimeout, leaseMargin time.Duration
	cancelPoll                          time.Duration
	noListener                          bool
	// slots is the worker's concurrency (and prefetch); 0 means 4.
	slots int
	// faults, when set, can make the store refuse leases and the leaser refuse lease copies.
	faults *leaseFaults
}

type jobStack struct {
	t         *testing.T
	url       string
	topo      broker.Topology
	store     *job.S3
	handler   *Handler
	rpc       *broker.RPCClient
	metrics   *jobRecorder
	taskStats *recorder
	callbacks *callbackLog
	consumer  string // the consumer's connection name
	dir       string // a folder for the scripts' pid and flag files
}

var jobBucketSeq atomic.Int64

func newJobStack(t *testing.T, o stackOptions) *jobStack {
	t.Helper()
	url := brokertest.URL(t)
	server := s3test.Start(t)
	bucket := fmt.Sprintf("jobs-%d", jobBucketSeq.Add(1))
	server.CreateBucket(t, bucket, false)
	jc, err := job.Load(server.Getenv("JOB_STORE_BUCKET=" + bucket))
	if err != nil {
		t.Fatal(err)
	}
	store, err := job.NewS3(t.Context(), jc)
	if err != nil {
		t.Fatal(err)
	}
	log := testlog.New(t, slog.LevelInfo)

	scripts := scripttest.Dir(t, "echo", "huge_result", "sleeper", "escapes_and_sleeps", "async_shared")
	repo, err := repository.NewLocal(scripts)
	if err != nil {
		t.Fatal(err)
	}
	// The fixtures report through files in the test's folder and host pids (pid_file, started_file,
	// until_file), which the namespaces containment hides (a private /tmp and /proc): a PID namespace alone
	// keeps them visible, as in test/faults and test/e2e.
	run, err := runner.New(runner.Config{Python: "python3", WorkDir: filepath.Join(t.TempDir(), "work"), KillGrace: time.Second, Logger: log,
		Containment: testContainment()})
	if err != nil {
		t.Fatal(err)
	}

	queue := brokertest.Name("jobs")
	topo := broker.NewTopology(queue)
	brokertest.DeleteQueues(t, url, []string{queue, topo.DeadLetterQueue, topo.LeaseQueue()}, []string{topo.DeadLetterExchange, topo.CancelExchange})
	ctx, stop := context.WithCancel(context.Background())
	if o.slots == 0 {
		o.slots = 4
	}

	publisher := broker.NewPublisher(broker.PublisherConfig{URL: url, Name: queue + "/publish", Logger: log})
	go func() { _ = publisher.Run(ctx) }()
	consumerName := queue + "/consume"
	consumer := broker.NewConsumer(broker.ConsumerConfig{URL: url, Name: consumerName, Topology: topo, Prefetch: o.slots, Logger: log,
		Settler: broker.Settler{Publisher: publisher, DeadLetterQueue: topo.DeadLetterQueue, ID: "w-jobs"}})
	s := &jobStack{t: t, url: url, topo: topo, store: store, metrics: &jobRecorder{}, taskStats: &recorder{}, callbacks: &callbackLog{},
		consumer: consumerName, dir: scripttest.ReachableTempDir(t)}
	cfg := Config{ID: "w-jobs", Concurrency: o.slots, Repository: repo, Runner: run, Jobs: store, Callbacks: s.callbacks,
		JobMetrics: s.metrics, CancelPoll: o.cancelPoll, ConsumerTimeout: o.consumerTimeout, LeaseMargin: o.leaseMargin,
		Metrics: s.taskStats, Logger: log}
	if o.lease > 0 {
		leaser := broker.NewLeaser(broker.LeaserConfig{URL: url, Name: queue + "/lease", Topology: topo, Period: o.lease, Logger: log})
		go func() { _ = leaser.Run(ctx) }()
		cfg.Leaser = leaser
		if o.faults != nil {
			cfg.Jobs, cfg.Leaser = leaseFaultyStore{S3: store, f: o.faults}, faultyLeaser{Leaser: leaser, f: o.faults}
		}
	}
	s.handler = New(cfg)
	if !o.noListener {
		listener := broker.NewCancelListener(broker.CancelListenerConfig{URL: url, Name: queue + "/cancel", Topology: topo,
			OnNotice: func(id string) { s.handler.CancelJob(id) }, Logger: log})
		go func() { _ = listener.Run(ctx) }()
		waitFor(t, "the cancel listener to connect", listener.Connected)
	}
	runCtx, stopConsuming := context.WithCancel(ctx)
	consumed := make(chan struct{})
	go func() { _ = consumer.Run(runCtx, s.handler.Handle); close(consumed) }()
	s.rpc = broker.NewRPCClient(broker.RPCConfig{URL: url, Name: queue + "/rpc", Topology: topo, Logger: log})
	go func() { _ = s.rpc.Run(ctx) }()
	waitFor(t, "the consumer and the RPC client to connect", func() bool { return consumer.Connected() && s.rpc.Connected() })

	t.Cleanup(func() {
		stopConsuming()
		<-consumed
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.handler.Shutdown(sctx)
		_ = run.Shutdown(sctx)
		_ = consumer.Shutdown(sctx)
		stop()
	})
	return s
}

// waitFor polls cond for up to a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const owner = "client-a"

// request builds a job's task for script with params, recording the job queued in the store first (as
// the gateway does).
func (s *jobStack) request(id, script, params string, timeout time.Duration) *contract.Request {
	s.t.Helper()
	accepted := time.Now().UTC()
	req := &contract.Request{Version: contract.Version, RequestID: id, ScriptName: script, Parameters: json.RawMessage(params),
		Budget: contract.NewJobBudget(accepted, timeout, 5*time.Second, time.Minute, 0, time.Time{}),
		Job:    &contract.JobTicket{Owner: owner, CallbackURL: "https://hooks.example.com/" + id}}
	q := job.Job{RequestID: id, Owner: owner, ScriptName: script, Status: job.StatusQueued, CreatedAt: accepted,
		CallbackURL: req.Job.CallbackURL}
	if err := s.store.Create(s.t.Context(), q); err != nil {
		s.t.Fatal(err)
	}
	return req
}

// call sends req and returns a channel with its reply.
func (s *jobStack) call(req *contract.Request) <-chan *contract.Reply {
	out := make(chan *contract.Reply, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		rep, err := s.rpc.Call(ctx, req)
		if err != nil {
			s.t.Errorf("call %s: %v", req.RequestID, err)
		}
		out <- rep
	}()
	return out
}

func (s *jobStack) reply(ch <-chan *contract.Reply) *contract.Reply {
	s.t.Helper()
	select {
	case rep := <-ch:
		if rep == nil {
			s.t.FailNow()
		}
		return rep
	case <-time.After(4 * time.Minute):
		s.t.Fatal("no reply")
	}
	return nil
}

func (s *jobStack) get(id string) job.Job {
	s.t.Helper()
	j, err := s.store.Get(s.t.Context(), id, owner)
	if err != nil {
		s.t.Fatal(err)
	}
	return j
}

// TestJobRunsAndCompletes: a job is recorded running (by this worker, with started_at) while its script
// runs, then completed with its inline result, script version and execution time; the reply says the
// same; the webhook is enqueued once with the final job; the metrics count it.
func TestJobRunsAndCompletes(t *testing.T) {
	t.Parallel()
	s := newJobStack(t, stackOptions{})
	until := filepath.Join(s.dir, "release")
	params := fmt.Sprintf(`{"seconds": 60, "until_file": %q}`, until)
	replies := s.call(s.request("job-complete", "sleeper", params, 30*time.Second))
	waitFor(t, "the job to be recorded running", func() bool {
		j, err := s.store.Get(t.Context(), "job-complete", owner)
		return err == nil && j.Status == job.StatusRunning
	})
	if j := s.get("job-complete"); j.WorkerID != "w-jobs" || j.StartedAt.IsZero() || j.CallbackURL == "" {
		t.Fatalf("running job %+v", j)
	}
	if err := os.WriteFile(until, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rep := s.reply(replies)
	if rep.Status != contract.StatusCompleted || string(rep.Data) != `{"released":true}` || rep.ResultKey != "" || rep.WorkerID != "w-jobs" {
		t.Fatalf("reply %+v (data %s)", rep, rep.Data)
	}
	j := s.get("job-complete")
	if j.Status != job.StatusCompleted || j.Result == nil || string(j.Result.Data) != `{"released":true}` || j.Result.Size != 17 ||
		j.ScriptVersion == "" || j.ExecutionTime <= 0 || j.FinishedAt.IsZero() || j.WorkerID != "w-jobs" {
		t.Fatalf("final job %+v", j)
	}
	waitFor(t, "the metrics", func() bool { return s.metrics.get("finished completed") == 1 })
	if s.metrics.get("results inline") != 1 || s.metrics.get("bytes inline") != 17 {
		t.Fatalf("result metrics %v", s.metrics.counts)
	}
	if cbs := s.callbacks.all(); len(cbs) != 1 || cbs[0].Status != job.StatusCompleted || cbs[0].RequestID != "job-complete" {
		t.Fatalf("callbacks %+v", cbs)
	}
}

// TestJobClaimCheck: results of 3 MiB and 50 MiB go to the job store; the reply and the job carry the key
// and size, and the object reads back byte-identical to what the script returned.
func TestJobClaimCheck(t *testing.T) {
	t.Parallel()
	s := newJobStack(t, stackOptions{})
	for _, size := range []int{3 << 20, 50 << 20} {
		id := fmt.Sprintf("job-big-%d", size)
		sent := time.Now()
		rep := s.reply(s.call(s.request(id, "huge_result", fmt.Sprintf(`{"bytes": %d}`, size), time.Minute)))
		t.Logf("%d MiB: reply %s after the request", size>>20, time.Since(sent).Round(time.Millisecond))
		want := []byte(`{"blob":"` + strings.Repeat("x", size) + `"}`)
		if rep.Status != contract.StatusCompleted || len(rep.Data) != 0 || rep.ResultKey != job.ResultKey(id) || rep.ResultSize != int64(len(want)) {
			t.Fatalf("%d bytes: reply status %s, key %q, size %d, %d bytes inline, err %+v", size, rep.Status, rep.ResultKey, rep.ResultSize, len(rep.Data), rep.Error)
		}
		j := s.get(id)
		if j.Status != job.StatusCompleted || j.Result == nil || j.Result.Key != rep.ResultKey || j.Result.Size != rep.ResultSize || len(j.Result.Data) != 0 {
			t.Fatalf("%d bytes: job %+v", size, j)
		}
		rc, err := s.store.OpenResult(t.Context(), rep.ResultKey)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: the stored result (%d bytes) differs from the script's", size, len(got))
		}
	}
	if s.metrics.get("results claim_check") != 2 {
		t.Fatalf("result metrics %v", s.metrics.counts)
	}
}

// TestJobCancelledWhileQueued: a job cancelled before a worker takes it never runs; the reply carries the
// recorded cancelled state.
func TestJobCancelledWhileQueued(t *testing.T) {
	t.Parallel()
	s := newJobStack(t, stackOptions{})
	started := filepath.Join(s.dir, "started")
	req := s.request("job-queued-cancel", "sleeper", fmt.Sprintf(`{"seconds": 1, "started_file": %q}`, started), 30*time.Second)
	if _, err := s.store.Cancel(t.Context(), req.RequestID, owner, time.Now()); err != nil {
		t.Fatal(err)
	}
	rep := s.reply(s.call(req))
	if rep.Status != contract.StatusCancelled || rep.Error == nil || rep.Error.Code != contract.CodeCancelled {
		t.Fatalf("reply %+v", rep)
	}
	if _, err := os.Stat(started); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the script of a cancelled job ran: %v", err)
	}
	if j := s.get(req.RequestID); j.Status != job.StatusCancelled || !j.StartedAt.IsZero() {
		t.Fatalf("job %+v", j)
	}
	if len(s.callbacks.all()) != 0 || s.metrics.get("finished cancelled") != 0 {
		t.Fatal("the worker did not win Finish; the canceller enqueues the webhook")
	}
}

// processGone reports whether pid has exited (gone, or a zombie about to be reaped).
func processGone(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(stat)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && (fields[0] == "Z" || fields[0] == "X")
}

// startEscapee starts a job whose script leaves a setsid grandchild behind and waits for its pid file; it
// returns the reply channel and the grandchild's pid.
func (s *jobStack) startEscapee(id string) (<-chan *contract.Reply, int) {
	s.t.Helper()
	pidFile := filepath.Join(s.dir, id+".pids")
	replies := s.call(s.request(id, "escapes_and_sleeps", fmt.Sprintf(`{"pid_file": %q}`, pidFile), 50*time.Second))
	var escapee int
	waitFor(s.t, "the script's pid file", func() bool {
		data, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		f := strings.Fields(string(data))
		escapee, err = strconv.Atoi(f[len(f)-1])
		return err == nil
	})
	if processGone(escapee) {
		s.t.Fatalf("the grandchild %d is not running", escapee)
	}
	return replies, escapee
}

// TestJobCancelledWhileRunning: a cancel notice stops a running job's script and the setsid grandchild it
// left; the job stays cancelled and the reply says so; a repeated cancel changes nothing.
func TestJobCancelledWhileRunning(t *testing.T) {
	t.Parallel()
	s := newJobStack(t, stackOptions{cancelPoll: time.Hour}) // the notice alone must do it
	replies, escapee := s.startEscapee("job-run-cancel")
	cancelled := time.Now()
	if _, err := s.store.Cancel(t.Context(), "job-run-cancel", owner, cancelled); err != nil {
		t.Fatal(err)
	}
	if err := s.rpc.NotifyCancel(t.Context(), "job-run-cancel"); err != nil {
		t.Fatal(err)
	}
	rep := s.reply(replies)
	t.Logf("reply %s after the cancel", time.Since(cancelled).Round(time.Millisecond))
	if rep.Status != contract.StatusCancelled || rep.Error == nil || rep.Error.Code != contract.CodeCancelled {
		t.Fatalf("reply %+v", rep)
	}
	waitFor(t, "the setsid grandchild to die", func() bool { return processGone(escapee) })
	t.Logf("grandchild gone %s after the cancel", time.Since(cancelled).Round(time.Millisecond))
	// Repeated: the store keeps the job cancelled, the notice finds nothing to stop.
	j, err := s.store.Cancel(t.Context(), "job-run-cancel", owner, time.Now())
	if err != nil || j.Status != job.StatusCancelled {
		t.Fatalf("repeated cancel: %+v, %v", j, err)
	}
	if err := s.rpc.NotifyCancel(t.Context(), "job-run-cancel"); err != nil {
		t.Fatal(err)
	}
	if s.handler.CancelJob("job-run-cancel") || s.handler.RunningJobs() != 0 {
		t.Fatal("the cancelled job is still registered as running")
	}
	if final := s.get("job-run-cancel"); final.Status != job.StatusCancelled || !final.FinishedAt.Equal(j.FinishedAt) {
		t.Fatalf("job after a repeated cancel %+v", final)
	}
}

// TestJobCancelBackstop: with no cancel notice (no listener), the poll of the store's cancel marker stops
// the run.
func TestJobCancelBackstop(t *testing.T) {
	t.Parallel()
	s := newJobStack(t, stackOptions{cancelPoll: 200 * time.Millisecond, noListener: true})
	replies, escapee := s.startEscapee("job-poll-cancel")
	if _, err := s.store.Cancel(t.Context(), "job-poll-cancel", owner, time.Now()); err != nil {
		t.Fatal(err)
	}
	if rep := s.reply(replies); rep.Status != contract.StatusCancelled {
		t.Fatalf("reply %+v", rep)
	}
	waitFor(t, "the setsid grandchild to die", func() bool { return processGone(escapee) })
}

// TestJobCancelInSharedRunner: cancelling a job whose async def script shares its runner with another
// job's call cancels that call's task alone; the other job completes on the same runner.
func TestJobCancelInSharedRunner(t *testing.T) {
	t.Parallel()
	s := newJobStack(t, stackOptions{cancelPoll: time.Hour})
	never, release := filepath.Join(s.dir, "never"), filepath.Join(s.dir, "release")
	aStarted, bStarted := filepath.Join(s.dir, "a-started"), filepath.Join(s.dir, "b-started")
	a := s.call(s.request("job-shared-a", "async_shared", fmt.Sprintf(`{"create": %q, "wait_for": %q}`, aStarted, never), 50*time.Second))
	waitFor(t, "job a to start", func() bool { _, err := os.Stat(aStarted); return err == nil })
	b := s.call(s.request("job-shared-b", "async_shared", fmt.Sprintf(`{"create": %q, "wait_for": %q}`, bStarted, release), 50*time.Second))
	waitFor(t, "job b to start", func() bool { _, err := os.Stat(bStarted); return err == nil })
	if _, err := s.store.Cancel(t.Context(), "job-shared-a", owner, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.rpc.NotifyCancel(t.Context(), "job-shared-a"); err != nil {
		t.Fatal(err)
	}
	if rep := s.reply(a); rep.Status != contract.StatusCancelled {
		t.Fatalf("cancelled call: %+v", rep)
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rep := s.reply(b)
	if rep.Status != contract.StatusCompleted {
		t.Fatalf("the other call: %+v", rep)
	}
	var got struct{ PID int }
	if err := json.Unmarshal(rep.Data, &got); err != nil || got.PID == 0 || processGone(got.PID) {
		t.Fatalf("the shared runner (pid %d) did not survive the other call's cancel: %s, %v", got.PID, rep.Data, err)
	}
}

// queueCounts asks rabbitmqctl for queue's ready and unacknowledged messages.
func queueCounts(t *testing.T, queue string) (ready, unacked int) {
	t.Helper()
	out, err := exec.Command("rabbitmqctl", "-q", "list_queues", "name", "messages_ready", "messages_unacknowledged").CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl list_queues: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == queue {
			ready, _ = strconv.Atoi(f[1])
			unacked, _ = strconv.Atoi(f[2])
			return ready, unacked
		}
	}
	t.Fatalf("no queue %s in\n%s", queue, out)
	return 0, 0
}

// readPID reads the pid a fixture wrote to path (0 until it has).
func readPID(path string) int {
	data, _ := os.ReadFile(path)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// lines counts the lines of a file (0 when it does not exist).
func lines(path string) int {
	data, _ := os.ReadFile(path)
	return strings.Count(string(data), "\n")
}

// TestJobLeased: a job longer than the consumer timeout allows (scaled down: 60 s less a 10 s margin) is
// leased: its delivery is acked while it runs, so a lost consumer connection does not bring it back (a
// held delivery would be redelivered and run again, as the job under the threshold shows); the lease is
// renewed past several lease periods (1 s); the job completes once, and the lease copies that come back
// are dropped.
func TestJobLeased(t *testing.T) {
	t.Parallel()
	s := newJobStack(t, stackOptions{lease: time.Second, consumerTimeout: time.Minute, leaseMargin: 10 * time.Second})

	// Under the threshold: held, so a lost connection redelivers it and it runs again. Its timeout leaves
	// room for closing the connection, which waits until the management API lists it (seconds on a loaded
	// machine): a job that timed out first is finished, and its redelivery rightly does not run it again.
	shortUntil, shortStarted := filepath.Join(s.dir, "short"), filepath.Join(s.dir, "short-started")
	shortReplies := s.call(s.request("job-short", "sleeper",
		fmt.Sprintf(`{"seconds": 60, "until_file": %q, "started_file": %q}`, shortUntil, shortStarted), 40*time.Second))
	waitFor(t, "the short job to run", func() bool { return lines(shortStarted) == 1 })
	brokertest.CloseConnection(t, s.consumer)
	waitFor(t, "the held job's redelivery to run again", func() bool { return lines(shortStarted) == 2 })
	_ = os.WriteFile(shortUntil, nil, 0o644)
	s.reply(shortReplies)

	until, started := filepath.Join(s.dir, "long"), filepath.Join(s.dir, "long-started")
	replies := s.call(s.request("job-long", "sleeper",
		fmt.Sprintf(`{"seconds": 120, "until_file": %q, "started_file": %q}`, until, started), 90*time.Second))
	waitFor(t, "the long job to be leased", func() bool {
		l, found, err := s.store.GetLease(t.Context(), "job-long")
		return err == nil && found && l.WorkerID == "w-jobs"
	})
	first, _, _ := s.store.GetLease(t.Context(), "job-long")
	brokertest.CloseConnection(t, s.consumer)
	// Several lease periods pass: renewals keep the lease ahead, and the copies that come back are dropped
	// without running the job again.
	waitFor(t, "three lease periods of renewals", func() bool {
		l, _, _ := s.store.GetLease(t.Context(), "job-long")
		return l.Until.Sub(first.Until) >= 3*time.Second
	})
	if j := s.get("job-long"); j.Status != job.StatusRunning || j.WorkerID != "w-jobs" {
		t.Fatalf("leased job %+v", j)
	}
	if err := os.WriteFile(until, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rep := s.reply(replies)
	if rep.Status != contract.StatusCompleted || string(rep.Data) != `{"released":true}` {
		t.Fatalf("reply %+v", rep)
	}
	if j := s.get("job-long"); j.Status != job.StatusCompleted {
		t.Fatalf("job %+v", j)
	}
	// The last copies come back within a lease period and are dropped: both queues drain.
	waitFor(t, "the lease copies to be dropped", func() bool {
		r1, u1 := queueCounts(t, s.topo.TaskQueue)
		r2, _ := queueCounts(t, s.topo.LeaseQueue())
		return r1+u1+r2 == 0
	})
	if n := lines(started); n != 1 {
		t.Fatalf("the leased job started %d times; want once", n)
	}
}

// TestTaskParkedBehindLeasedJobs: with its one slot held by a leased job, the worker does not hold the next
// delivery past the consumer timeout (scaled down: 4 s less a 2 s margin): it parks it in the lease queue,
// again each time it comes back, and runs it once the slot is free.
func TestTaskParkedBehindLeasedJobs(t *testing.T) {
	t.Parallel()
	s := newJobStack(t, stackOptions{slots: 1, lease: time.Second, consumerTimeout: 4 * time.Second, leaseMargin: 2 * time.Second})
	release, aStarted, bStarted := filepath.Join(s.dir, "release"), filepath.Join(s.dir, "a-started"), filepath.Join(s.dir, "b-started")
	a := s.call(s.request("job-slot-a", "sleeper", fmt.Sprintf(`{"seconds": 120, "until_file": %q, "started_file": %q}`, release, aStarted), time.Minute))
	waitFor(t, "job a to be leased", func() bool {
		_, found, err := s.store.GetLease(t.Context(), "job-slot-a")
		return err == nil && found
	})
	b := s.call(s.request("job-slot-b", "sleeper", fmt.Sprintf(`{"seconds": 0, "started_file": %q}`, bStarted), time.Minute))
	// Parked at least twice: b waits 2 s for the slot, then 1 s in the lease queue, each round.
	waitFor(t, "job b to be parked twice", func() bool {
		_, found, err := s.store.GetLease(t.Context(), "job-slot-b")
		return err == nil && !found && s.taskStats.get("rejected "+RejectedParked) >= 2
	})
	if lines(bStarted) != 0 {
		t.Fatal("job b ran while the slot was busy")
	}
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if rep := s.reply(a); rep.Status != contract.StatusCompleted {
		t.Fatalf("job a: %+v", rep)
	}
	if rep := s.reply(b); rep.Status != contract.StatusCompleted {
		t.Fatalf("job b: %+v", rep)
	}
	if lines(aStarted) != 1 || lines(bStarted) != 1 {
		t.Fatalf("a ran %d times, b %d times; want once each", lines(aStarted), lines(bStarted))
	}
}

// publishLeaseCopy puts a lease copy of req into the lease queue, as a worker that then died would have.
func (s *jobStack) publishLeaseCopy(req *contract.Request) {
	s.t.Helper()
	msg, err := req.Publishing(time.Now())
	if err != nil {
		s.t.Fatal(err)
	}
	msg.Expiration = ""
	msg.Headers = amqp.Table{broker.LeaseHeader: "w-lost"}
	msg.ReplyTo = ""
	_, ch := brokertest.Channel(s.t, s.url)
	if err := ch.PublishWithContext(s.t.Context(), "", s.topo.LeaseQueue(), false, false, msg); err != nil {
		s.t.Fatal(err)
	}
}

// TestJobLeaseOfLostWorker: a worker that leased a job and died leaves it running with a lease that runs
// out; its last lease copy comes back and the job runs again with the time left, or, with none left, is
// recorded failed with worker_lost.
func TestJobLeaseOfLostWorker(t *testing.T) {
	t.Parallel()
	s := newJobStack(t, stackOptions{lease: time.Second, consumerTimeout: 3 * time.Second, leaseMargin: 2 * time.Second})
	lost := func(req *contract.Request) {
		running := job.Job{RequestID: req.RequestID, Owner: owner, ScriptName: req.ScriptName, Status: job.StatusRunning,
			CreatedAt: req.Accepted, StartedAt: time.Now(), WorkerID: "w-lost", CallbackURL: req.Job.CallbackURL}
		if err := s.store.Start(s.t.Context(), running); err != nil {
			s.t.Fatal(err)
		}
		if err := s.store.RenewLease(s.t.Context(), req.RequestID, job.Lease{WorkerID: "w-lost", Until: time.Now().Add(500 * time.Millisecond)}); err != nil {
			s.t.Fatal(err)
		}
		s.publishLeaseCopy(req)
	}

	rerun := s.request("job-rerun", "echo", `{"again": true}`, 30*time.Second)
	lost(rerun)
	waitFor(t, "the job to run again", func() bool { return s.get("job-rerun").Status.Final() })
	if j := s.get("job-rerun"); j.Status != job.StatusCompleted || j.WorkerID != "w-jobs" {
		t.Fatalf("rerun job %+v", j)
	}

	late := s.request("job-late", "echo", `{}`, time.Second)
	late.Deadline = time.Now().Add(600 * time.Millisecond) // passed by the time the copy comes back (1 s)
	lost(late)
	waitFor(t, "the job to fail", func() bool { return s.get("job-late").Status.Final() })
	if j := s.get("job-late"); j.Status != job.StatusFailed || j.Error == nil || j.Error.Code != contract.CodeWorkerLost {
		t.Fatalf("job of a lost worker with no time left %+v", j)
	}
	if cbs := s.callbacks.all(); len(cbs) != 2 {
		t.Fatalf("callbacks %+v", cbs)
	}
}

// leaseFaults turn the job store's lease records and the broker's lease copies into failures, as an
// unreachable store or broker would.
type leaseFaults struct{ store, copies atomic.Bool }

type leaseFaultyStore struct {
	*job.S3
	f *leaseFaults
}

func (s leaseFaultyStore) RenewLease(ctx context.Context, id string, l job.Lease) error {
	if s.f.store.Load() {
		return errors.New("the job store is unreachable (test)")
	}
	return s.S3.RenewLease(ctx, id, l)
}

type faultyLeaser struct {
	*broker.Leaser
	f *leaseFaults
}

func (l faultyLeaser) Lease(ctx context.Context, t *broker.Task, by string) error {
	if l.f.copies.Load() {
		return errors.New("the broker refused the lease copy (test)")
	}
	return l.Leaser.Lease(ctx, t, by)
}

// TestLeaseNotRenewedStopsTheRun: a worker that can no longer renew its lease of a running job (the store
// refuses the lease, or the broker its copy) stops the run when its lease runs out, and the last copy brings
// the job back: it runs again (here on the same worker, its slot free), the first run's processes gone, and
// completes once. Without the stop, a refused lease record let the copy run the job a second time beside the
// first; a refused copy left the lease fresh with no copy in flight, so a worker lost then lost the job.
func TestLeaseNotRenewedStopsTheRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		fail func(*leaseFaults) *atomic.Bool
	}{
		{"the store refuses the lease", func(f *leaseFaults) *atomic.Bool { return &f.store }},
		{"the broker refuses the lease copy", func(f *leaseFaults) *atomic.Bool { return &f.copies }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			faults := &leaseFaults{}
			s := newJobStack(t, stackOptions{lease: 2 * time.Second, consumerTimeout: time.Minute, leaseMargin: 10 * time.Second, faults: faults})
			until, started, pidFile := filepath.Join(s.dir, "until"), filepath.Join(s.dir, "started"), filepath.Join(s.dir, "pid")
			s.call(s.request("job-fenced", "sleeper",
				fmt.Sprintf(`{"seconds": 120, "until_file": %q, "started_file": %q, "pid_file": %q}`, until, started, pidFile), 90*time.Second))
			waitFor(t, "the job to be leased", func() bool {
				_, found, err := s.store.GetLease(t.Context(), "job-fenced")
				return err == nil && found && lines(started) == 1 && readPID(pidFile) > 0
			})
			first := readPID(pidFile) // the first run's `sleep 600`: it goes when the run is stopped
			tc.fail(faults).Store(true)
			waitFor(t, "the job to run again", func() bool { return lines(started) == 2 })
			// The run is stopped before its copy can come back (leaseGuard): here, only that it was stopped
			// at all is checked, as the order depends on the machine's timing (a run not stopped keeps its
			// `sleep 600`).
			proctest.WaitGone(t, 30*time.Second, first)
			tc.fail(faults).Store(false)
			if err := os.WriteFile(until, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			// The first call's reply never comes (its run was stopped); the job ends completed, once.
			waitFor(t, "the job to complete", func() bool { return s.get("job-fenced").Status.Final() })
			if j := s.get("job-fenced"); j.Status != job.StatusCompleted || j.Result == nil || string(j.Result.Data) != `{"released":true}` {
				t.Fatalf("job %+v", j)
			}
			if n := lines(started); n != 2 {
				t.Fatalf("the job started %d times; want twice (stopped once, run again once)", n)
			}
		})
	}
}

// TestNonJobTaskUnchanged: a task without a job keeps the configured inline result limit and touches no
// job store.
func TestNonJobTaskUnchanged(t *testing.T) {
	t.Parallel()
	s := newJobStack(t, stackOptions{})
	req := &contract.Request{Version: contract.Version, RequestID: "plain", ScriptName: "huge_result",
		Parameters: json.RawMessage(`{"bytes": 1048576}`), Budget: contract.NewBudget(time.Now(), 30*time.Second, 5*time.Second, time.Time{})}
	rep := s.reply(s.call(req))
	if rep.Status != contract.StatusFailed || rep.Error == nil || rep.Error.Code != contract.CodeOutputTooLarge {
		t.Fatalf("a 1 MiB result of a plain task: %+v", rep)
	}
	if _, err := s.store.Get(t.Context(), "plain", owner); !errors.Is(err, job.ErrNotFound) {
		t.Fatalf("a plain task left a job: %v", err)
	}
	req = &contract.Request{Version: contract.Version, RequestID: "plain-echo", ScriptName: "echo",
		Parameters: json.RawMessage(`{"a": 1}`), Budget: contract.NewBudget(time.Now(), 30*time.Second, 5*time.Second, time.Time{})}
	if rep := s.reply(s.call(req)); rep.Status != contract.StatusCompleted || len(rep.Data) == 0 || rep.ResultKey != "" {
		t.Fatalf("plain echo %+v", rep)
	}
}

// testContainment is a PID namespace where the test may make one (root), else a session.
func testContainment() string {
	if os.Geteuid() == 0 {
		return runner.ContainPIDNamespace
	}
	return runner.ContainSession
}
