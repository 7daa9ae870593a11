package gateway

import (
	"log/slog"
	"time"

	"github.com/scrapeplatform/platform/shared/broker"
	sharedconfig "github.com/scrapeplatform/platform/shared/config"
	"github.com/scrapeplatform/platform/shared/contract"
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
}

// LoadConfig reads the HTTP API's configuration through getenv. It reports every problem at once.
func LoadConfig(getenv func(string) string) (Config, error) {
	e := sharedconfig.NewEnv(getenv)
	c := Config{
		RabbitMQURL:  e.String("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
		TaskQueue:    e.String("RABBITMQ_TASK_QUEUE", "scraping_tasks"),
		MaxTimeout:   e.Duration("SCRAPE_MAX_TIMEOUT", 25*time.Second, contract.MinTimeout, contract.MaxTimeout),
		ReplyGrace:   e.Duration("SCRAPE_REPLY_GRACE", contract.DefaultReplyGrace, 100*time.Millisecond, time.Minute),
		MaxBodyBytes: int64(e.Int("SCRAPE_MAX_BODY_BYTES", 256*1024, 1024, contract.MaxMessageBytes-16*1024)),
		LogLevel:     e.OneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		IdleCheck:    e.Duration("RABBITMQ_IDLE_CHECK", 0, 0, time.Hour),
	}
	c.DefaultTimeout = e.Duration("SCRAPE_DEFAULT_TIMEOUT", min(20*time.Second, c.MaxTimeout), contract.MinTimeout, contract.MaxTimeout)
	if c.DefaultTimeout > c.MaxTimeout {
		e.Fail("SCRAPE_DEFAULT_TIMEOUT (%s) is larger than SCRAPE_MAX_TIMEOUT (%s)", c.DefaultTimeout, c.MaxTimeout)
	}
	return c, e.Err()
}

// RPCConfig is the configuration of the handler's RPC client, named name; an edge adds its metric hooks.
func (c Config) RPCConfig(name string, log *slog.Logger) broker.RPCConfig {
	return broker.RPCConfig{URL: c.RabbitMQURL, Name: name, Topology: broker.NewTopology(c.TaskQueue), Logger: log}
}
