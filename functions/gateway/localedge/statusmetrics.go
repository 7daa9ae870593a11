package localedge

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/sysstat"
)

// QueueInspector is what StatusCollector needs from the broker; *broker.RPCClient satisfies it.
type QueueInspector interface {
	Connected() bool
	Inspect(ctx context.Context, queue string) (broker.QueueState, error)
}

var _ QueueInspector = (*broker.RPCClient)(nil)

// StatusCollector exports what GET /status reports as Prometheus gauges, measured when Prometheus scrapes:
//
//	scraping_queue_length                ready messages in the task queue (passive declare)
//	scraping_active_workers              consumers of the task queue: one per running worker
//	scraping_dead_letter_queue_length    messages in the dead-letter queue
//	system_memory_usage_percent          system-wide, from /proc/meminfo (the seed's name)
//	system_cpu_usage_percent             system-wide, from /proc/stat, since the previous scrape (the seed's name)
//
// The queue gauges are left out of a scrape while the broker is unreachable or does not answer within the
// timeout, rather than reported as 0: "no workers" must not fire because the gateway cannot see them
// (scraping_gateway_broker_connected and the broker's own `up` say that). The scrape itself never fails.
type StatusCollector struct {
	broker  QueueInspector
	topo    broker.Topology
	timeout time.Duration
	log     *slog.Logger
	stats   *sysstat.Sampler

	queueLength, activeWorkers, deadLetters, memory, cpu *prometheus.Desc
}

var _ prometheus.Collector = (*StatusCollector)(nil)

// NewStatusCollector returns a collector for taskQueue and its dead-letter queue. timeout bounds each
// scrape's broker round trips (keep it below the scrape timeout).
func NewStatusCollector(b QueueInspector, taskQueue string, timeout time.Duration, log *slog.Logger) *StatusCollector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &StatusCollector{
		broker: b, topo: broker.NewTopology(taskQueue), timeout: timeout, log: log,
		// CPU usage is averaged since the previous scrape, whatever the scrape interval.
		stats: &sysstat.Sampler{Window: 10 * time.Minute},
		queueLength: prometheus.NewDesc("scraping_queue_length",
			"Ready messages in the task queue (tasks no worker has taken yet), as the broker reports them.", nil, nil),
		activeWorkers: prometheus.NewDesc("scraping_active_workers",
			"Consumers of the task queue: the workers consuming right now.", nil, nil),
		deadLetters: prometheus.NewDesc("scraping_dead_letter_queue_length",
			"Messages in the dead-letter queue (invalid, expired or poison tasks).", nil, nil),
		memory: prometheus.NewDesc("system_memory_usage_percent",
			"System-wide memory in use (total minus available), percent.", nil, nil),
		cpu: prometheus.NewDesc("system_cpu_usage_percent",
			"System-wide CPU busy time since the previous scrape, percent of all cores.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *StatusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.queueLength, c.activeWorkers, c.deadLetters, c.memory, c.cpu} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *StatusCollector) Collect(ch chan<- prometheus.Metric) {
	if m, err := c.stats.MemoryPercent(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.memory, prometheus.GaugeValue, m)
	}
	if p, err := c.stats.CPUPercent(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.cpu, prometheus.GaugeValue, p)
	}
	if !c.broker.Connected() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	tasks, err := c.broker.Inspect(ctx, c.topo.TaskQueue)
	if err != nil {
		c.log.Debug("metrics: inspect task queue", "error", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.queueLength, prometheus.GaugeValue, float64(tasks.Messages))
	ch <- prometheus.MustNewConstMetric(c.activeWorkers, prometheus.GaugeValue, float64(tasks.Consumers))
	dead, err := c.broker.Inspect(ctx, c.topo.DeadLetterQueue)
	if err != nil {
		c.log.Debug("metrics: inspect dead-letter queue", "error", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.deadLetters, prometheus.GaugeValue, float64(dead.Messages))
}
