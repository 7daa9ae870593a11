package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/brokertest"
	"github.com/scrapeplatform/platform/shared/job"
	"github.com/scrapeplatform/platform/shared/webhook"
)

func allowAll(netip.Addr, int) error { return nil }

// The worker's deliverer, built from WEBHOOK_* settings, delivers a signed job and counts it in
// scraping_webhook_deliveries_total.
func TestStartWebhooksDelivers(t *testing.T) {
	url := brokertest.URL(t)
	task := brokertest.Name("test-worker-webhooks")
	q := webhook.NewQueues(task)
	secret, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"WEBHOOK_SECRET": secret.Encode(), "WEBHOOK_RETRY_DELAYS": "1s,5s", "WEBHOOK_MAX_AGE": "1m"}
	cfg, err := webhook.LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	queues := []string{q.Main, q.Dead}
	for _, d := range cfg.Schedule.DelayLevels() {
		queues = append(queues, q.Delay(d))
	}
	brokertest.DeleteQueues(t, url, queues, nil)
	var accepted atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify([]webhook.Secret{secret}, r.Header, body, time.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		accepted.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	store := job.NewMemory(0, nil)
	now := time.Now().UTC()
	j := job.Job{RequestID: "req-w1", Owner: "o", ScriptName: "s", Status: job.StatusQueued, CreatedAt: now, CallbackURL: recv.URL}
	if err := store.Create(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	j.Status, j.FinishedAt, j.Webhook = job.StatusCompleted, now, nil
	final, _, err := store.Finish(context.Background(), j)
	if err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	stop, err := startWebhooks(ctx, webhookDeps{Config: webhookConfig(t, env), RabbitMQURL: url,
		TaskQueue: task, WorkerID: "w1", Store: store, CheckAddr: allowAll, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}

	pub := broker.NewPublisher(broker.PublisherConfig{URL: url, Name: task + "/outbox"})
	pctx, pcancel := context.WithCancel(context.Background())
	defer pcancel()
	go func() { _ = pub.Run(pctx) }()
	if err := webhook.NewOutbox(pub, task).Enqueue(context.Background(), final); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := store.Get(context.Background(), "req-w1", "o")
		if err != nil {
			t.Fatal(err)
		}
		if got.Webhook != nil && got.Webhook.Status == job.WebhookDelivered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered: %+v", got.Webhook)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("receiver accepted %d deliveries", n)
	}
	c, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(c) != 1 || c[0].GetName() != "scraping_webhook_deliveries_total" {
		t.Fatalf("registered metrics %v", c)
	}
	m := newWebhookMetricsProbe(t, reg)
	if m != 1 {
		t.Errorf("scraping_webhook_deliveries_total{outcome=delivered,attempt=1} = %v, want 1", m)
	}

	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	if err := stop(sctx); err != nil {
		t.Errorf("stop: %v", err)
	}
}

// newWebhookMetricsProbe reads the delivered/1 series from reg's text exposition.
func newWebhookMetricsProbe(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["outcome"] == "delivered" && labels["attempt"] == "1" {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatal("no delivered/1 series")
	return 0
}

func TestStartWebhooksWithoutSecretOrWithBadSettings(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	stop, err := startWebhooks(context.Background(), webhookDeps{Config: webhookConfig(t, nil), TaskQueue: "q",
		Store: job.NewMemory(0, nil), CheckAddr: allowAll, Registry: prometheus.NewRegistry(), Logger: log})
	if err != nil || stop == nil || stop(context.Background()) != nil {
		t.Fatalf("without a secret: %v", err)
	}
	if !strings.Contains(logs.String(), "WEBHOOK_SECRET is not set") || !strings.Contains(logs.String(), "q.webhooks") {
		t.Errorf("log %q does not say why nothing is delivered", logs.String())
	}
	env := map[string]string{"WEBHOOK_SECRET": "whsec_c2hvcnQ=", "WEBHOOK_RETRY_DELAYS": "soon"}
	_, err = loadConfig(func(k string) string { return env[k] }) // the worker reads WEBHOOK_* with the rest
	if err == nil || !strings.Contains(err.Error(), "WEBHOOK_SECRET") || !strings.Contains(err.Error(), "WEBHOOK_RETRY_DELAYS") ||
		strings.Contains(err.Error(), "c2hvcnQ") {
		t.Errorf("bad settings: %v; want both named, the secret not shown", err)
	}
	secret, _ := webhook.NewSecret()
	env = map[string]string{"WEBHOOK_SECRET": secret.Encode()}
	if _, err := startWebhooks(context.Background(), webhookDeps{Config: webhookConfig(t, env), TaskQueue: "q",
		Store: job.NewMemory(0, nil), Registry: prometheus.NewRegistry()}); err == nil {
		t.Error("started without an address check")
	}
}

func TestWebhookMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newWebhookMetrics(reg)
	m.Delivery(webhook.OutcomeRetry, 2)
	m.Delivery(webhook.OutcomeRetry, 2)
	if v := testutil.ToFloat64(m.deliveries.WithLabelValues("retry", "2")); v != 2 {
		t.Errorf("retry/2 = %v, want 2", v)
	}
	if n := testutil.CollectAndCount(m.deliveries); n != 5 {
		t.Errorf("%d series; want the 4 first-attempt series at 0 plus retry/2", n)
	}
}

// webhookConfig reads the WEBHOOK_* settings of env as the worker's configuration does.
func webhookConfig(t *testing.T, env map[string]string) webhook.Config {
	t.Helper()
	c, err := webhook.LoadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return c
}
