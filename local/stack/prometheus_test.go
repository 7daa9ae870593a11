package stack

import (
	"strings"
	"testing"
	"time"
)

func TestPrometheusConfigYAML(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		time.Second: "1s", 1500 * time.Millisecond: "1500ms", 2 * time.Minute: "2m", 48 * time.Hour: "48h",
	} {
		if got := promDuration(d); got != want {
			t.Errorf("promDuration(%s) = %q, want %q", d, got, want)
		}
	}
	got := string(PrometheusConfig{
		ScrapeInterval: 5 * time.Second, Gateways: []string{"127.0.0.1:8080"}, Workers: []string{"127.0.0.1:9101", "127.0.0.1:9102"},
		RabbitMQ: []string{"127.0.0.1:15692"}, RuleFiles: []string{"/x/alerts.yml"},
	}.YAML())
	for _, want := range []string{
		"scrape_interval: 5s\n  scrape_timeout: 5s\n  evaluation_interval: 5s\n",
		"rule_files:\n  - \"/x/alerts.yml\"\n",
		"- job_name: gateway\n    static_configs:\n      - targets: [\"127.0.0.1:8080\"]\n",
		"- job_name: worker\n    static_configs:\n      - targets: [\"127.0.0.1:9101\", \"127.0.0.1:9102\"]\n",
		"- job_name: rabbitmq_queues\n    metrics_path: \"/metrics/detailed\"\n    params:\n      family: [\"queue_coarse_metrics\", \"queue_consumer_count\"]\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
}
