// Command worker consumes scrape tasks from RabbitMQ, runs each task's script in a child process, and
// replies. Configuration comes from the environment; see worker/README.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/worker/internal/config"
	"github.com/scrapeplatform/platform/worker/internal/envcache"
	"github.com/scrapeplatform/platform/worker/internal/runner"
	"github.com/scrapeplatform/platform/worker/internal/worker"
)

func main() {
	cfg, err := config.Load(os.Getenv)
	execCfg, execErr := config.LoadExec(os.Getenv, cfg.WorkDir, cfg.Concurrency)
	sec, secErr := config.LoadSecurity(os.Getenv)
	if err = errors.Join(err, execErr, secErr); err != nil {
		fmt.Fprintf(os.Stderr, "worker: invalid configuration:\n%v\n", err)
		os.Exit(2)
	}
	log := newLogger(cfg.LogLevel)
	protectSecrets(sec, log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, execCfg, sec, log); err != nil {
		log.Error("worker stopped", "error", err)
		os.Exit(1)
	}
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// run starts the worker and blocks until ctx ends, then shuts down in the documented order.
func run(ctx context.Context, cfg config.Config, execCfg config.Exec, sec config.Security, log *slog.Logger) error {
	log = log.With("worker_id", cfg.WorkerID)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := worker.NewMetrics(reg)

	repo, err := openRepository(ctx, cfg, reg, log)
	if err != nil {
		return fmt.Errorf("script repository: %w", err)
	}
	runCfg := runner.Config{
		Python:           cfg.Python,
		WorkDir:          cfg.WorkDir,
		MaxResultBytes:   cfg.MaxResultBytes,
		MemoryLimitBytes: cfg.MemoryLimitBytes,
		Logger:           log,
		Warm: runner.WarmConfig{
			MaxRequests: execCfg.WarmMaxRequests, IdleTimeout: execCfg.WarmIdleTimeout, MaxIdle: execCfg.WarmMaxIdle,
		},
	}
	stopEgress, err := secureRunner(&runCfg, sec, reg, log)
	if err != nil {
		return err
	}
	defer stopEgress()
	run, err := runner.New(runCfg)
	if err != nil {
		return fmt.Errorf("script runner: %w", err)
	}
	defer run.Close()
	metrics.WatchRunner(reg, run.WarmStats)
	envs, err := envcache.New(envcache.Config{
		Root: execCfg.EnvCacheDir, Python: run.Python(), MaxBytes: execCfg.EnvCacheMaxBytes,
		BuildTimeout: execCfg.EnvBuildTimeout, Logger: log,
		OnBuild: func(outcome string, d time.Duration) {
			metrics.EnvBuilds.WithLabelValues(outcome).Inc()
			metrics.EnvBuildDuration.Observe(d.Seconds())
		},
		OnHit: metrics.EnvCacheHits.Inc,
	})
	if err != nil {
		return fmt.Errorf("environment cache: %w", err)
	}
	topo := broker.NewTopology(cfg.TaskQueue)
	hooks := func(name string) (func(), func(error)) {
		metrics.BrokerConnected.WithLabelValues(name).Set(0)
		return func() {
				metrics.BrokerConnected.WithLabelValues(name).Set(1)
				metrics.Reconnects.WithLabelValues(name).Inc()
			}, func(error) {
				metrics.BrokerConnected.WithLabelValues(name).Set(0)
			}
	}
	pubUp, pubDown := hooks("publish")
	publisher := broker.NewPublisher(broker.PublisherConfig{
		URL: cfg.RabbitMQURL, Name: cfg.WorkerID + "/publish", Logger: log, OnConnect: pubUp, OnDisconnect: pubDown,
	})
	conUp, conDown := hooks("consume")
	consumer := broker.NewConsumer(broker.ConsumerConfig{
		URL: cfg.RabbitMQURL, Name: cfg.WorkerID + "/consume", Topology: topo, Prefetch: cfg.Concurrency,
		Logger: log, OnConnect: conUp, OnDisconnect: conDown,
		// Tasks are settled through the publisher: replies, and dead letters (invalid and expired tasks go
		// to the dead-letter queue with the reason).
		Settler: broker.Settler{Publisher: publisher, DeadLetterQueue: topo.DeadLetterQueue, ID: cfg.WorkerID,
			OnReplyFailure: func(error) { metrics.ReplyFailures.Inc() }},
	})
	w := worker.New(worker.Config{
		ID: cfg.WorkerID, Concurrency: cfg.Concurrency, Repository: repo, Runner: run,
		Environments: envs, Isolation: execCfg.Isolation, Metrics: metrics, Logger: log,
	})

	pubCtx, stopPublisher := context.WithCancel(context.WithoutCancel(ctx))
	pubDone := make(chan struct{})
	go func() { _ = publisher.Run(pubCtx); close(pubDone) }()

	srv, err := serveHTTP(cfg.MetricsAddr, reg, func() bool { return consumer.Connected() && publisher.Connected() }, log)
	if err != nil {
		stopPublisher()
		return err
	}
	log.Info("worker started", "concurrency", cfg.Concurrency, "queue", cfg.TaskQueue,
		"broker", broker.Redact(cfg.RabbitMQURL), "scripts", repo.Describe(), "metrics_addr", srv.Addr)

	// Consume until ctx ends (SIGTERM/SIGINT).
	_ = consumer.Run(ctx, w.Handle)

	// Shutdown, in order: 1. consumption has stopped (Run cancelled the consumer); 2. drain running work;
	// 3. past the drain timeout, kill what still runs and requeue it; 4. close connections; 5. stop HTTP.
	log.Info("shutting down: draining running scripts", "drain_timeout", cfg.DrainTimeout)
	clean := w.Shutdown(cfg.DrainTimeout, 5*time.Second)
	consumer.Close()
	stopPublisher()
	<-pubDone
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	if !clean {
		return errors.New("some tasks did not stop in time; the broker requeues them")
	}
	log.Info("worker stopped cleanly")
	return nil
}

// serveHTTP serves /healthz and /metrics on addr.
func serveHTTP(addr string, reg *prometheus.Registry, healthy func() bool, log *slog.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if !healthy() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, `{"status":"unhealthy","components":{"rabbitmq":"disconnected"}}`)
			return
		}
		fmt.Fprintln(w, `{"status":"healthy","components":{"rabbitmq":"connected"}}`)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on WORKER_METRICS_ADDR %s: %w", addr, err)
	}
	srv := &http.Server{Addr: ln.Addr().String(), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "error", err)
		}
	}()
	return srv, nil
}
