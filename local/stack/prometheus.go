package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Prometheus job names. The dashboards (local/grafana/dashboards) and alert
// rules (local/prometheus/alerts.yml) select series by them, and
// local/prometheus/prometheus.yml (compose) uses the same ones.
const (
	JobGateway        = "gateway"
	JobWorker         = "worker"
	JobRabbitMQ       = "rabbitmq"        // rabbitmq_prometheus, /metrics: per-node aggregates
	JobRabbitMQQueues = "rabbitmq_queues" // rabbitmq_prometheus, /metrics/detailed: per-queue numbers
)

// RabbitMQQueueFamilies are the metric families the rabbitmq_queues job asks
// /metrics/detailed for: ready/unacknowledged/total messages and consumers
// per queue.
var RabbitMQQueueFamilies = []string{"queue_coarse_metrics", "queue_consumer_count"}

// DefaultRabbitMQPrometheusPort is where the rabbitmq_prometheus plugin
// listens unless configured otherwise.
const DefaultRabbitMQPrometheusPort = 15692

// PrometheusConfig is a Prometheus configuration for the processes of a local
// stack: one static target per process, host:port each.
type PrometheusConfig struct {
	// ScrapeInterval is the global scrape interval (default 15s); the scrape
	// timeout is the same. EvaluationInterval defaults to ScrapeInterval.
	ScrapeInterval     time.Duration
	EvaluationInterval time.Duration
	Gateways           []string
	Workers            []string
	// RabbitMQ lists rabbitmq_prometheus endpoints (host:15692); each gets
	// both RabbitMQ jobs.
	RabbitMQ []string
	// RuleFiles are alert and recording rule files, best given as absolute
	// paths (relative ones are relative to the configuration file).
	RuleFiles []string
}

// YAML renders the configuration file.
func (c PrometheusConfig) YAML() []byte {
	scrape := c.ScrapeInterval
	if scrape <= 0 {
		scrape = 15 * time.Second
	}
	eval := c.EvaluationInterval
	if eval <= 0 {
		eval = scrape
	}
	var b bytes.Buffer
	b.WriteString("# Written by the local stack (local/stack/prometheus.go); rewritten on every start.\n")
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n",
		promDuration(scrape), promDuration(scrape), promDuration(eval))
	if len(c.RuleFiles) > 0 {
		b.WriteString("rule_files:\n")
		for _, f := range c.RuleFiles {
			fmt.Fprintf(&b, "  - %s\n", strconv.Quote(f))
		}
	}
	b.WriteString("scrape_configs:\n")
	job := func(name, path string, params map[string][]string, targets []string) {
		fmt.Fprintf(&b, "  - job_name: %s\n", name)
		if path != "" {
			fmt.Fprintf(&b, "    metrics_path: %s\n", strconv.Quote(path))
		}
		if len(params) > 0 {
			b.WriteString("    params:\n")
			for k, vs := range params {
				fmt.Fprintf(&b, "      %s: [%s]\n", k, quoteAll(vs))
			}
		}
		fmt.Fprintf(&b, "    static_configs:\n      - targets: [%s]\n", quoteAll(targets))
	}
	job(JobGateway, "", nil, c.Gateways)
	job(JobWorker, "", nil, c.Workers)
	job(JobRabbitMQ, "", nil, c.RabbitMQ)
	job(JobRabbitMQQueues, "/metrics/detailed", map[string][]string{"family": RabbitMQQueueFamilies}, c.RabbitMQ)
	return b.Bytes()
}

// promDuration formats d the way Prometheus reads durations (ms, s, m, h).
func promDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	default:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
}

func quoteAll(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}

// PrometheusOptions configures StartPrometheus.
type PrometheusOptions struct {
	// Binary is the prometheus executable; "" looks it up on PATH.
	Binary string
	// Addr is the listen address, e.g. 127.0.0.1:9090.
	Addr string
	// Dir holds the configuration file it writes (prometheus.yml) and the
	// time series database (data/).
	Dir    string
	Config PrometheusConfig
	// Retention bounds the database (default 2d: the local stack is for
	// looking at what just happened).
	Retention time.Duration
	// Output receives Prometheus's log lines, prefixed "[prometheus] ".
	Output io.Writer
	// ReadyTimeout bounds the wait for GET /-/ready (default 30s).
	ReadyTimeout time.Duration
}

// Prometheus is a running Prometheus server started by StartPrometheus.
type Prometheus struct {
	*Process
	url        string
	configFile string
}

// LookPrometheus returns the prometheus binary on PATH, or an error saying how
// to install it.
func LookPrometheus() (string, error) {
	p, err := exec.LookPath("prometheus")
	if err != nil {
		return "", fmt.Errorf("prometheus is not installed (Debian/Ubuntu: apt-get install prometheus; macOS: brew install prometheus): %w", err)
	}
	return p, nil
}

// StartPrometheus writes o.Config to o.Dir/prometheus.yml and runs
// Prometheus on it as a supervised Process (own process group, output
// prefixed) with the lifecycle API enabled (Reload), then waits until GET
// /-/ready answers 200. It never touches a system Prometheus: its database,
// configuration and listen address are its own.
func StartPrometheus(ctx context.Context, o PrometheusOptions) (*Prometheus, error) {
	if o.Binary == "" {
		bin, err := LookPrometheus()
		if err != nil {
			return nil, err
		}
		o.Binary = bin
	}
	if o.Addr == "" {
		return nil, errors.New("prometheus needs a listen address")
	}
	if o.Retention <= 0 {
		o.Retention = 48 * time.Hour
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, fmt.Errorf("prometheus data folder: %w", err)
	}
	if err := checkAddrFree("prometheus", o.Addr); err != nil {
		return nil, err
	}
	p := &Prometheus{url: "http://" + dialAddr(o.Addr), configFile: filepath.Join(dir, "prometheus.yml")}
	if err := os.WriteFile(p.configFile, o.Config.YAML(), 0o600); err != nil {
		return nil, err
	}
	args := []string{
		"--config.file=" + p.configFile,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--storage.tsdb.retention.time=" + promDuration(o.Retention.Round(time.Second)),
		"--web.listen-address=" + o.Addr,
		"--web.enable-lifecycle",
		"--log.level=warn",
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	proc, err := StartProcess(context.WithoutCancel(ctx), "prometheus", o.Binary, args, env, o.Output)
	if err != nil {
		return nil, err
	}
	p.Process = proc
	if err := WaitReady(ctx, proc, p.url+"/-/ready", o.ReadyTimeout); err != nil {
		_ = proc.Stop(startFailureStopTimeout)
		return nil, err
	}
	return p, nil
}

// URL returns the base URL of the web UI and HTTP API, e.g. http://127.0.0.1:9090.
func (p *Prometheus) URL() string { return p.url }

// ConfigFile returns the path of the configuration file it runs on.
func (p *Prometheus) ConfigFile() string { return p.configFile }

// Reload rewrites the configuration file with cfg and has Prometheus load it
// (POST /-/reload), e.g. to add or remove targets. Rule files are re-read
// too.
func (p *Prometheus) Reload(ctx context.Context, cfg PrometheusConfig) error {
	if err := os.WriteFile(p.configFile, cfg.YAML(), 0o600); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url+"/-/reload", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("reload prometheus: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("reload prometheus: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
