// Command gateway-local serves the gateway handler as a plain HTTP server, with /metrics, for local
// development and the compose stack. It is the same handler the Lambda entry point serves.
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

	"github.com/scrapeplatform/platform/functions/gateway/localedge"
	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/protect"
)

func main() {
	cfg, err := localedge.LoadConfig(os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gateway-local: invalid configuration:\n%v\n", err)
		os.Exit(2)
	}
	addr := os.Getenv("GATEWAY_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Gateway.LogLevel))
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Like the worker: scripts of the same user may not read this process's environment (JWT_SECRET) or
	// memory through /proc (make run as root runs scripts as root when SCRIPT_RUN_AS is off).
	if err := protect.Process(); err != nil {
		log.Warn("could not hide the gateway's environment from other processes of its user", "error", err)
	}
	if err := run(ctx, cfg, addr, log); err != nil {
		log.Error("gateway stopped", "error", err)
		os.Exit(1)
	}
}

// statusMetricsTimeout bounds the broker round trips of one /metrics scrape (two passive declares).
const statusMetricsTimeout = time.Second

// run serves until ctx ends, then stops accepting, lets requests in flight finish (bounded), and closes
// the broker connection.
func run(ctx context.Context, cfg localedge.Config, addr string, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := localedge.NewMetrics(reg)
	// The local edge: bearer tokens verified here, Prometheus metrics.
	h, client, err := localedge.Build(cfg, "gateway-local", log, metrics)
	if err != nil {
		return err
	}
	// GET /status's numbers as gauges: queue length, active workers, dead letters, system CPU and memory.
	reg.MustRegister(localedge.NewStatusCollector(client, cfg.Gateway.TaskQueue, statusMetricsTimeout, log))
	// The login first, so a wrong password or virtual host is said at once with the broker's reason. The
	// gateway still starts: the session keeps redialling (it logs once per change of reason) and GET /health
	// says why it is disconnected meanwhile.
	if err := broker.CheckLogin(ctx, cfg.Gateway.RabbitMQURL); err != nil {
		log.Error("AMQP login check failed; serving anyway and redialling until the broker accepts (GET /health says why)", "error", err)
	}
	brokerCtx, stopBroker := context.WithCancel(context.WithoutCancel(ctx))
	brokerDone := make(chan struct{})
	go func() { _ = client.Run(brokerCtx); close(brokerDone) }()

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("/", h)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		stopBroker()
		return fmt.Errorf("listen on GATEWAY_ADDR %s: %w", addr, err)
	}
	// Timeouts, the header limit, the body rules and the connection cap: server.go.
	maxConns := fitDescriptorLimit(cfg.MaxConnections, log)
	srv := newServer(cfg, mux)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(newCapListener(ln, maxConns, log)) }()
	log.Info("gateway listening", "addr", ln.Addr().String(), "broker", broker.Redact(cfg.Gateway.RabbitMQURL), "auth_mode", "jwt",
		"max_connections", maxConns)

	select {
	case err := <-errc:
		stopBroker()
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.Gateway.LongestWait()+time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	stopBroker()
	<-brokerDone
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("gateway stopped cleanly")
	return nil
}
