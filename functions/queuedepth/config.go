package queuedepth

import (
	"net/url"
	"time"

	"github.com/scrapeplatform/platform/shared/broker"
	sharedconfig "github.com/scrapeplatform/platform/shared/config"
)

// Config is the queue-depth function's configuration; functions/README.md has the table of variables.
type Config struct {
	// ManagementURL is the broker's management API base, e.g. https://b-1234.mq.eu-west-1.on.aws.
	ManagementURL string
	// SecretARN names the Secrets Manager secret with the monitoring broker user's credentials. When it is empty,
	// Username and Password are used (local runs).
	SecretARN string
	Username  string
	Password  string
	VHost     string
	TaskQueue string
	// DeadLetterQueue defaults to "<TaskQueue>.dead", the name shared/broker's topology declares.
	DeadLetterQueue string
	// WebhookDeadLetterQueue (RABBITMQ_WEBHOOK_DEAD_LETTER_QUEUE, default "<TaskQueue>.webhooks.dead") is where
	// shared/webhook puts deliveries whose retries ran out; its depth is published as DeadLetterMessages
	// with that Queue dimension. "-" leaves it out.
	WebhookDeadLetterQueue string
	// Cluster and Service name the worker's ECS service; both empty = no task counts (local runs).
	Cluster string
	Service string
	// Namespace and Stage place the metrics: namespace Namespace, dimension Stage (and Queue).
	Namespace string
	Stage     string
	// MaxLength, when above zero, is the task queue's bound: each run makes sure the policy PolicyName
	// (default "<TaskQueue>-bound") limits the queue to MaxLength messages with overflow reject-publish.
	// Zero leaves the broker's policies alone.
	MaxLength  int64
	PolicyName string
	// PolicyApplyTo and PolicyPriority place that policy among the broker's others (see QueueBoundPolicy).
	PolicyApplyTo  string
	PolicyPriority int
	// Timeout bounds each management API request.
	Timeout  time.Duration
	LogLevel string
}

// LoadConfig reads the configuration through getenv and reports every problem at once.
func LoadConfig(getenv func(string) string) (Config, error) {
	e := sharedconfig.NewEnv(getenv)
	c := Config{
		ManagementURL: e.String("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:15672"),
		SecretARN:     e.String("RABBITMQ_SECRET_ARN", ""),
		Username:      e.String("RABBITMQ_MANAGEMENT_USER", "guest"),
		Password:      e.String("RABBITMQ_MANAGEMENT_PASSWORD", "guest"),
		VHost:         e.String("RABBITMQ_VHOST", "/"),
		TaskQueue:     e.String("RABBITMQ_TASK_QUEUE", "scraping_tasks"),
		Cluster:       e.String("ECS_CLUSTER", ""),
		Service:       e.String("ECS_SERVICE", ""),
		Namespace:     e.String("METRIC_NAMESPACE", "ScrapingPlatform"),
		Stage:         e.String("STAGE", ""),
		Timeout:       e.Duration("MANAGEMENT_TIMEOUT", 10*time.Second, time.Second, time.Minute),
		LogLevel:      e.OneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
	}
	c.DeadLetterQueue = e.String("RABBITMQ_DEAD_LETTER_QUEUE", c.TaskQueue+".dead")
	if c.WebhookDeadLetterQueue = e.String("RABBITMQ_WEBHOOK_DEAD_LETTER_QUEUE", c.TaskQueue+".webhooks.dead"); c.WebhookDeadLetterQueue == "-" {
		c.WebhookDeadLetterQueue = ""
	}
	c.MaxLength = int64(e.Int("TASK_QUEUE_MAX_LENGTH", 0, 0, 10_000_000))
	defaultName, _, _ := broker.NewTopology(c.TaskQueue).BoundPolicy(0)
	c.PolicyName = e.String("TASK_QUEUE_POLICY", defaultName)
	c.PolicyApplyTo = e.OneOf("TASK_QUEUE_POLICY_APPLY_TO", "queues", "queues", "quorum_queues")
	c.PolicyPriority = e.Int("TASK_QUEUE_POLICY_PRIORITY", broker.BoundPolicyPriority, 0, 1000)
	if u, err := url.Parse(c.ManagementURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		e.Fail("RABBITMQ_MANAGEMENT_URL must be an http(s) URL such as https://b-1234.mq.eu-west-1.on.aws, got %q", c.ManagementURL)
	} else if u.User != nil {
		e.Fail("RABBITMQ_MANAGEMENT_URL must not carry credentials (use RABBITMQ_SECRET_ARN)")
	}
	if c.Stage == "" {
		e.Fail("STAGE must be set (dev, staging, prod): it is the metrics' Stage dimension")
	}
	if (c.Cluster == "") != (c.Service == "") {
		e.Fail("ECS_CLUSTER and ECS_SERVICE must be set together")
	}
	return c, e.Err()
}
