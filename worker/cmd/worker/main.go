// Command worker consumes scrape tasks from RabbitMQ, runs each task's script in a child process, and
// replies. Configuration comes from the environment (config.go; worker/README.md documents it).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/job"
	"github.com/scrapeplatform/platform/shared/sysstat"
	"github.com/scrapeplatform/platform/shared/webhook"
	"github.com/scrapeplatform/platform/worker/internal/admission"
	"github.com/scrapeplatform/platform/worker/internal/envcache"
	"github.com/scrapeplatform/platform/worker/internal/runner"
	"github.com/scrapeplatform/platform/worker/internal/task"
	"github.com/scrapeplatform/platform/worker/internal/telemetry"
)

func main() {
	cfg, err := loadConfig(os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "worker: invalid configuration:\n%v\n", err)
		os.Exit(2)
	}
	log := newLogger(cfg.LogLevel)
	protectSecrets(cfg.Runner, log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("worker stopped", "error", err)
		os.Exit(1)
	}
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// Bounds of the shutdown steps that have no setting of their own.
const (
	// stopGrace bounds how long killed scripts' tasks take to be requeued (task.Config.StopGrace).
	stopGrace = 5 * time.Second
	// closeTimeout bounds each of the later steps: the runner's warm pool, each AMQP connection, the
	// egress proxy and the HTTP server.
	closeTimeout = 2 * time.Second
)

// run starts the worker, hands each package its part of cfg, and blocks until ctx ends; then it shuts
// down in this order, every step bounded:
//
//  1. stop consuming: consumer.Run returns once ctx ends (the broker cancels the consumer; deliveries
//     already on their way are handed over and run or requeued);
//  2. drain: running scripts may finish for at most WORKER_DRAIN_TIMEOUT (task.Handler.Shutdown);
//  3. kill process groups: past the drain the handler cancels the remaining runs, whose process groups
//     the runner kills;
//  4. requeue the unfinished: their tasks are settled with Requeue, within stopGrace; the warm runners
//     are then stopped (runner.Shutdown, closeTimeout);
//  5. close channels and connections: the consume connection (the broker requeues anything still
//     unacknowledged), then the publish connection (closeTimeout each);
//  6. stop the egress proxy and the HTTP server (closeTimeout each).
//
// The whole sequence takes at most WORKER_DRAIN_TIMEOUT + stopGrace + 5 × closeTimeout: keep that below
// the orchestrator's stop timeout (ECS stopTimeout, at most 120 s).
func run(ctx context.Context, cfg workerConfig, log *slog.Logger) error {
	log = log.With("worker_id", cfg.Task.ID)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := telemetry.New(reg)
	metrics.LimitClients(cfg.MaxClients)

	repo, err := openRepository(ctx, cfg.Repository, metrics, log)
	if err != nil {
		return fmt.Errorf("script repository: %w", err)
	}
	proxy, err := startEgress(cfg.Egress, metrics, log)
	if err != nil {
		return err
	}
	var proxyURL string
	if proxy != nil {
		proxyURL = proxy.URL()
		cfg.Runner.ServeProxy = proxy.Serve // each run's way out of its network namespace
		defer bounded(log, "stop the egress proxy", proxy.Shutdown)
	}

	runCfg := cfg.Runner
	runCfg.Logger, runCfg.Metrics, runCfg.ProxyURL = log, metrics, proxyURL
	warnRunAsRoot(runCfg, log)
	scripts, err := runner.New(runCfg)
	if err != nil {
		return fmt.Errorf("script runner: %w", err)
	}
	// On an early return; after a normal run the shutdown sequence has stopped it already.
	defer bounded(log, "stop the warm runners", scripts.Shutdown)
	// What holds for scripts here (worker/README.md, Security): the runner logs it at start too.
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "scraping_script_containment",
		Help:        "1, labelled with the containment of scripts the worker settled on at start",
		ConstLabels: prometheus.Labels{"mode": scripts.Containment()}}, func() float64 { return 1 }))

	envCfg := cfg.Envs
	envCfg.Python, envCfg.Logger, envCfg.Metrics = scripts.Python(), log, metrics
	envs, err := envcache.New(envCfg)
	if err != nil {
		return fmt.Errorf("environment cache: %w", err)
	}

	// A broker that refuses the login says why now, once, instead of among the sessions' redials; the
	// worker still starts and keeps redialling (the broker may be starting, or credentials rotating).
	loginCtx, cancelLogin := context.WithTimeout(ctx, 5*time.Second)
	err = broker.CheckLogin(loginCtx, cfg.RabbitMQURL)
	cancelLogin()
	if err != nil {
		log.Error("AMQP login check failed; starting anyway and redialling until the broker accepts", "error", err)
	}
	topo := broker.NewTopology(cfg.TaskQueue)
	// Admission by load (issue 12): the consumer's prefetch follows the controller's capacity, from its
	// initial value up to WORKER_CONCURRENCY while CPU, memory and the runners' event loops stay healthy.
	admit := admission.New(cfg.Admission)
	initialCapacity, _, _ := admit.Capacity()
	pubUp, pubDown := metrics.Connection("publish")
	publisher := broker.NewPublisher(broker.PublisherConfig{
		URL: cfg.RabbitMQURL, Name: cfg.Task.ID + "/publish", Logger: log, OnConnect: pubUp, OnDisconnect: pubDown,
	})
	conUp, conDown := metrics.Connection("consume")
	consumer := broker.NewConsumer(broker.ConsumerConfig{
		URL: cfg.RabbitMQURL, Name: cfg.Task.ID + "/consume", Topology: topo, Prefetch: initialCapacity,
		Logger: log, OnConnect: conUp, OnDisconnect: conDown,
		// Tasks are settled through the publisher: replies, and dead letters (invalid and expired tasks go
		// to the dead-letter queue with the reason).
		Settler: broker.Settler{Publisher: publisher, DeadLetterQueue: topo.DeadLetterQueue, ID: cfg.Task.ID,
			OnReplyFailure: metrics.ReplyFailed},
	})
	taskCfg := cfg.Task
	taskCfg.Repository, taskCfg.Runner, taskCfg.Environments = repo, scripts, envs
	taskCfg.StopGrace, taskCfg.Metrics, taskCfg.Logger = stopGrace, metrics, log
	if proxy != nil {
		taskCfg.Egress = proxy // a failed run's reply says what the proxy refused it
	}
	// Jobs (issue 10): the job store, the lease queue of long jobs and the cancel notices. Without a job
	// store, tasks that carry a job fail (internal_error).
	var leaser *broker.Leaser
	var jobStore webhook.Store // stays a nil interface without a store (startWebhooks then starts nothing)
	if cfg.JobStore != nil {
		store, err := job.NewS3(ctx, *cfg.JobStore)
		if err != nil {
			return fmt.Errorf("job store: %w", err)
		}
		leaseUp, leaseDown := metrics.Connection("lease")
		leaser = broker.NewLeaser(broker.LeaserConfig{URL: cfg.RabbitMQURL, Name: cfg.Task.ID + "/lease", Topology: topo,
			Period: cfg.JobLease, Logger: log, OnConnect: leaseUp, OnDisconnect: leaseDown})
		taskCfg.Jobs, taskCfg.Leaser, taskCfg.JobMetrics = store, leaser, metrics
		// A job with a callback_url that this worker ends is handed to the webhook queue; the deliverers
		// (started below, one per worker) post it.
		taskCfg.Callbacks = webhook.NewOutbox(publisher, cfg.TaskQueue)
		jobStore = store
	} else {
		log.Warn("no job store (JOB_STORE_BUCKET unset): tasks that carry a job will fail")
	}
	handler := task.New(taskCfg)

	pubCtx, stopPublisher := context.WithCancel(context.WithoutCancel(ctx))
	pubDone := make(chan struct{})
	go func() { _ = publisher.Run(pubCtx); close(pubDone) }()
	if leaser != nil {
		cancelUp, cancelDown := metrics.Connection("cancel")
		listener := broker.NewCancelListener(broker.CancelListenerConfig{URL: cfg.RabbitMQURL, Name: cfg.Task.ID + "/cancel",
			Topology: topo, OnNotice: func(id string) { handler.CancelJob(id) }, Logger: log,
			OnConnect: cancelUp, OnDisconnect: cancelDown})
		// Both live until the publisher's context ends (step 5): leased jobs renew, and running jobs hear
		// cancels, throughout the drain.
		go func() { _ = leaser.Run(pubCtx) }()
		go func() { _ = listener.Run(pubCtx) }()
	}

	// Webhooks: delivered from <task>.webhooks, every connection through the scripts' SSRF guard (the same
	// EGRESS_ALLOW exceptions).
	stopWebhooks, err := startWebhooks(pubCtx, webhookDeps{Config: cfg.Webhooks, RabbitMQURL: cfg.RabbitMQURL,
		TaskQueue: cfg.TaskQueue, WorkerID: cfg.Task.ID, Store: jobStore, CheckAddr: cfg.Egress.Policy.Check,
		Registry: reg, Connection: metrics.Connection, Logger: log})
	if err != nil {
		stopPublisher()
		return fmt.Errorf("webhooks: %w", err)
	}

	srv, err := serveStatus(cfg.MetricsAddr, reg, func() bool { return consumer.Connected() && publisher.Connected() },
		statusLimits{}, log)
	if err != nil {
		stopPublisher()
		return err
	}
	defer bounded(log, "stop the HTTP server", srv.Shutdown)
	ac := admit.Config()
	log.Info("worker started", "concurrency", cfg.Task.Concurrency, "admission_floor", ac.Floor, "admission_initial", ac.Initial, "queue", cfg.TaskQueue,
		"broker", broker.Redact(cfg.RabbitMQURL), "scripts", repo.Describe(), "metrics_addr", srv.Addr)

	// 1. Consume until ctx ends (SIGTERM/SIGINT). A task waiting for a slot behind leased jobs is requeued
	// at once, so the consumer can stop.
	stopTaking := context.AfterFunc(ctx, handler.StopTaking)
	defer stopTaking()
	sys := &sysstat.Sampler{}
	go runAdmission(ctx, admit, loadSampler{sys: sys, lag: scripts.TakeLoopLag, inFlight: handler.InFlight,
		starts: scripts.TakeWarmStarts, own: newTreeCPU(sys)},
		consumer.SetPrefetch, metrics.Admission, log)
	_ = consumer.Run(ctx, handler.Handle)

	// 2–4. Drain, then kill and requeue what still runs.
	log.Info("shutting down: draining running scripts", "drain_timeout", cfg.DrainTimeout)
	drainCtx, cancelDrain := context.WithTimeout(context.WithoutCancel(ctx), cfg.DrainTimeout)
	handlerErr := handler.Shutdown(drainCtx)
	cancelDrain()
	bounded(log, "stop the warm runners", scripts.Shutdown)
	bounded(log, "stop webhook deliveries", stopWebhooks)
	// 5. Close the connections: consume first (the broker requeues what is still unacknowledged), then
	// publish.
	bounded(log, "close the consume connection", consumer.Shutdown)
	stopPublisher()
	bounded(log, "close the publish connection", func(ctx context.Context) error {
		select {
		case <-pubDone:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	// 6. The deferred calls stop the HTTP server, then the egress proxy.
	if handlerErr != nil {
		return fmt.Errorf("some tasks did not stop in time; the broker requeues them: %w", handlerErr)
	}
	log.Info("worker stopped cleanly")
	return nil
}

// bounded runs one shutdown step with closeTimeout: step gets a context that ends then, and bounded stops
// waiting for it then (the step goes on in the background; the process is about to exit).
func bounded(log *slog.Logger, name string, step func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- step(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			log.Warn("shutdown step failed", "step", name, "error", err)
		}
	case <-ctx.Done():
		log.Warn("shutdown step did not finish in time; going on", "step", name, "timeout", closeTimeout)
	}
}
