package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scrapeplatform/platform/shared/webhook"
)

// webhookDeps is what the webhook deliverer takes from the rest of the worker.
type webhookDeps struct {
	// Config is the WEBHOOK_* settings (webhook.LoadConfigFrom documents them), read with the rest of the
	// worker's configuration.
	Config webhook.Config
	// RabbitMQURL, TaskQueue and WorkerID are the worker's own settings: the deliverer consumes
	// <TaskQueue>.webhooks on a connection of its own named <WorkerID>/webhooks.
	RabbitMQURL, TaskQueue, WorkerID string
	// Store is the job store (nil without JOB_STORE_BUCKET: no deliverer).
	Store webhook.Store
	// CheckAddr is the SSRF guard every callback connection passes (shared/netguard's check, with the
	// worker's EGRESS_ALLOW): required.
	CheckAddr func(addr netip.Addr, port int) error
	// Registry receives scraping_webhook_deliveries_total.
	Registry prometheus.Registerer
	// Connection reports the deliverer's connection (telemetry's Connection, called with "webhooks" only
	// when a deliverer starts, so a worker that delivers none shows no disconnected connection); may be nil.
	Connection func(name string) (onConnect func(), onDisconnect func(error))
	Logger     *slog.Logger
}

// startWebhooks builds the webhook deliverer from the worker's settings and runs it until ctx ends. It
// returns the shutdown step that stops it: it waits for the deliveries in flight until its context ends
// (those cut short are redelivered by the broker: delivery is at least once) and closes the connection.
//
// Without WEBHOOK_SECRET or without a job store it starts nothing and says so once: deliveries then wait
// durably in <task>.webhooks for a worker that has both. Invalid WEBHOOK_* settings are an error (the
// worker does not start), as every other invalid setting.
func startWebhooks(ctx context.Context, deps webhookDeps) (stop func(context.Context) error, err error) {
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := deps.Config
	metrics := newWebhookMetrics(deps.Registry)
	noop := func(context.Context) error { return nil }
	queue := webhook.NewQueues(deps.TaskQueue).Main
	switch {
	case len(cfg.Secrets) == 0:
		log.Warn("WEBHOOK_SECRET is not set: this worker delivers no webhooks; callbacks wait in their queue",
			"queue", queue)
		return noop, nil
	case deps.Store == nil:
		log.Warn("no job store (JOB_STORE_BUCKET): this worker delivers no webhooks; callbacks wait in their queue",
			"queue", queue)
		return noop, nil
	case deps.CheckAddr == nil:
		return nil, errors.New("webhooks: no address check for callback connections")
	}
	var onConnect func()
	var onDisconnect func(error)
	if deps.Connection != nil {
		onConnect, onDisconnect = deps.Connection("webhooks")
	}
	d, err := webhook.NewDeliverer(webhook.DelivererConfig{
		URL: deps.RabbitMQURL, Name: deps.WorkerID + "/webhooks", TaskQueue: deps.TaskQueue,
		Store: deps.Store, Secrets: cfg.Secrets, Schedule: cfg.Schedule,
		Concurrency: cfg.Concurrency, Timeout: cfg.Timeout, CheckAddr: deps.CheckAddr,
		Metrics: metrics, OnConnect: onConnect, OnDisconnect: onDisconnect, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	log.Info("delivering webhooks", "queue", queue, "concurrency", cfg.Concurrency, "timeout", cfg.Timeout,
		"max_age", cfg.Schedule.Total, "retry_delays", cfg.Schedule.Plan(), "secrets", len(cfg.Secrets))
	return func(sctx context.Context) error {
		select {
		case <-done: // Run returns once ctx has ended
		case <-sctx.Done():
			return fmt.Errorf("the webhook deliverer is still running: %w", sctx.Err())
		}
		return d.Shutdown(sctx)
	}, nil
}

// webhookMetrics implements webhook.Metrics with scraping_webhook_deliveries_total{outcome, attempt}; the
// deliverer bounds attempt (1 to the planned retries + 1).
type webhookMetrics struct{ deliveries *prometheus.CounterVec }

var _ webhook.Metrics = (*webhookMetrics)(nil)

// newWebhookMetrics registers the webhook metric with reg, its first-attempt series of every outcome at 0.
func newWebhookMetrics(reg prometheus.Registerer) *webhookMetrics {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scraping_webhook_deliveries_total",
		Help: "Webhook delivery attempts by outcome (delivered, retry, failed: retries exhausted and dead-lettered, refused: forbidden address) and attempt number.",
	}, []string{"outcome", "attempt"})
	if reg != nil {
		reg.MustRegister(c)
	}
	for _, o := range []string{webhook.OutcomeDelivered, webhook.OutcomeRetry, webhook.OutcomeFailed, webhook.OutcomeRefused} {
		c.WithLabelValues(o, "1")
	}
	return &webhookMetrics{deliveries: c}
}

// Delivery implements webhook.Metrics.
func (m *webhookMetrics) Delivery(outcome string, attempt int) {
	m.deliveries.WithLabelValues(outcome, strconv.Itoa(attempt)).Inc()
}
