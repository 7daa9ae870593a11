package gateway

import (
	"context"
	"log/slog"
	"time"

	"github.com/scrapeplatform/platform/shared/broker"
	sharedconfig "github.com/scrapeplatform/platform/shared/config"
	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/job"
	"github.com/scrapeplatform/platform/shared/netguard"
)

// Config is the HTTP API's configuration, the part both edges share (localedge.Config and
// lambdaedge.Config hold the rest). The README's table documents every field's variable.
type Config struct {
	RabbitMQURL string
	TaskQueue   string
	// DefaultTimeout applies when a request names none; MaxTimeout is the largest accepted.
	DefaultTimeout time.Duration
	MaxTimeout     time.Duration
	// ReplyGrace is the reply grace of the time budget (contract.NewBudget): added to a request's timeout
	// to get its deadline, for queueing, start-up and the reply's way back.
	ReplyGrace   time.Duration
	MaxBodyBytes int64
	LogLevel     string
	// IdleCheck: before a call, a connection idle for longer than this is verified with a broker round trip
	// and redialled if dead (a thawed Lambda's connection may be). 0 disables the check; the Lambda edge
	// defaults it to 15 s.
	IdleCheck time.Duration

	// SyncWait is the synchronous window of POST /scrape (SCRAPE_SYNC_WAIT): a scrape done within it is
	// answered 200, otherwise 202 with the job's Location. Prefer: wait=N shortens it; respond-async ends it
	// at once. Without a job store it bounds the whole scrape (answered 504 past it).
	SyncWait time.Duration
	// QueueWait is how long a job may wait in the queue for a worker and still run its whole timeout
	// (JOB_QUEUE_WAIT, contract.NewJobBudget).
	QueueWait time.Duration
	// InlineResultBytes is the largest claim-checked result an answer carries inline as data
	// (GATEWAY_INLINE_RESULT_MB); a larger one is answered with data_url, a presigned GET.
	InlineResultBytes int64
	// StatusPublic serves GET /status's aggregate figures without a token (STATUS_PUBLIC); the details
	// still need one.
	StatusPublic bool
	// Egress is the SSRF guard a callback_url must pass (EGRESS_ALLOW, the workers' allow list).
	Egress netguard.Policy
	// JobStore locates the job store (JOB_STORE_BUCKET and the rest, job.Load); nil without
	// JOB_STORE_BUCKET: then every scrape is synchronous and the job routes answer 503.
	JobStore *job.Config
}

// The defaults and bounds of the jobs settings.
const (
	DefaultMaxTimeout          = 900 * time.Second
	DefaultSyncWait            = 25 * time.Second
	DefaultQueueWait           = 10 * time.Minute
	DefaultInlineResultMB      = 5
	MaxJobWait                 = 20 * time.Second // GET /jobs/{id}?wait=N
	maxSyncWait                = 15 * time.Minute
	maxQueueWait               = 24 * time.Hour
	maxInlineResultMB          = 100
	retryAfterStoreUnavailable = "5"
)

// LoadConfig reads the HTTP API's configuration through getenv. It reports every problem at once.
func LoadConfig(getenv func(string) string) (Config, error) {
	e := sharedconfig.NewEnv(getenv)
	c := Config{
		RabbitMQURL:       e.String("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
		TaskQueue:         e.String("RABBITMQ_TASK_QUEUE", "scraping_tasks"),
		MaxTimeout:        e.Duration("SCRAPE_MAX_TIMEOUT", DefaultMaxTimeout, contract.MinTimeout, contract.MaxTimeout),
		ReplyGrace:        e.Duration("SCRAPE_REPLY_GRACE", contract.DefaultReplyGrace, 100*time.Millisecond, time.Minute),
		MaxBodyBytes:      int64(e.Int("SCRAPE_MAX_BODY_BYTES", 256*1024, 1024, contract.MaxMessageBytes-16*1024)),
		LogLevel:          e.OneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		IdleCheck:         e.Duration("RABBITMQ_IDLE_CHECK", 0, 0, time.Hour),
		SyncWait:          e.Duration("SCRAPE_SYNC_WAIT", DefaultSyncWait, time.Second, maxSyncWait),
		QueueWait:         e.Duration("JOB_QUEUE_WAIT", DefaultQueueWait, 0, maxQueueWait),
		InlineResultBytes: int64(e.Int("GATEWAY_INLINE_RESULT_MB", DefaultInlineResultMB, 0, maxInlineResultMB)) << 20,
		StatusPublic:      e.Bool("STATUS_PUBLIC", true),
	}
	allow := e.String("EGRESS_ALLOW", "")
	policy, err := netguard.ParsePolicy(allow)
	if err != nil {
		e.Fail("EGRESS_ALLOW=%q: %v", allow, err)
	}
	c.Egress = policy
	if getenv("JOB_STORE_BUCKET") != "" {
		jc, err := job.Load(getenv)
		if err != nil {
			e.Fail("%v", err)
		}
		c.JobStore = &jc
	}
	c.DefaultTimeout = e.Duration("SCRAPE_DEFAULT_TIMEOUT", min(20*time.Second, c.MaxTimeout), contract.MinTimeout, contract.MaxTimeout)
	if c.DefaultTimeout > c.MaxTimeout {
		e.Fail("SCRAPE_DEFAULT_TIMEOUT (%s) is larger than SCRAPE_MAX_TIMEOUT (%s)", c.DefaultTimeout, c.MaxTimeout)
	}
	return c, e.Err()
}

// LongestWait is the longest an answer of the handler may take once the request is read: the sync window
// (or a job's long poll) and the reply grace.
func (c Config) LongestWait() time.Duration {
	return max(c.SyncWait, MaxJobWait) + c.ReplyGrace
}

// RPCConfig is the configuration of the handler's RPC client, named name; an edge adds its metric hooks.
func (c Config) RPCConfig(name string, log *slog.Logger) broker.RPCConfig {
	return broker.RPCConfig{URL: c.RabbitMQURL, Name: name, Topology: broker.NewTopology(c.TaskQueue), Logger: log}
}

// OpenJobStore opens the job store cfg.JobStore locates (S3, or an S3-compatible server); nil, nil without
// one. It does not reach the store: a store that is down is found by the requests that need it.
func (c Config) OpenJobStore(ctx context.Context) (JobStore, error) {
	if c.JobStore == nil {
		return nil, nil
	}
	s, err := job.NewS3(ctx, *c.JobStore)
	if err != nil {
		return nil, err
	}
	return s, nil
}
