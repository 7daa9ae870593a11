package gateway

import (
	"strings"
	"time"

	sharedconfig "github.com/scrapeplatform/platform/shared/config"
	"github.com/scrapeplatform/platform/shared/contract"
)

// Config is the gateway's configuration. The README's table documents every field's variable.
type Config struct {
	RabbitMQURL string
	TaskQueue   string
	// AuthMode is "jwt" (verify bearer tokens here) or "apigateway" (trust API Gateway's authorizers).
	AuthMode  string
	JWTSecret string
	// JWTJWKSURL, when set, has AUTH_MODE=jwt verify RS256/ES256 tokens with the identity provider's keys
	// instead of an HS256 secret; JWTIssuer and JWTAudience are then required.
	JWTJWKSURL  string
	JWTIssuer   string
	JWTAudience string
	// JWTScopes, when set, are required on /scrape and /status (one of them), like the stage's jwtScopes on
	// API Gateway's routes.
	JWTScopes []string
	// DefaultTimeout applies when a request names none; MaxTimeout is the largest accepted.
	DefaultTimeout time.Duration
	MaxTimeout     time.Duration
	// ReplyGrace is added to a request's timeout to get its deadline: time for queueing, start-up and reply.
	ReplyGrace   time.Duration
	MaxBodyBytes int64
	LogLevel     string
	// IdleCheck: before a call, a connection idle for longer than this is verified with a broker round trip
	// and redialled if dead (a thawed Lambda's connection may be). 0 disables the check.
	IdleCheck time.Duration
	// EMFNamespace, when set, makes Build record metrics as CloudWatch EMF lines on stdout.
	EMFNamespace string
	// Stage names the deployment stage in EMF metrics.
	Stage string
}

// LoadConfig reads the configuration through getenv; defaultAuthMode is "jwt" for the local server and
// "apigateway" in Lambda. It reports every problem at once.
func LoadConfig(getenv func(string) string, defaultAuthMode string) (Config, error) {
	e := sharedconfig.NewEnv(getenv)
	// Lambda (apigateway mode) gets the defaults that suit a frozen-and-thawed process without /metrics.
	idleDefault, emfDefault := time.Duration(0), ""
	if defaultAuthMode == "apigateway" {
		idleDefault, emfDefault = 15*time.Second, "ScrapingPlatform"
	}
	c := Config{
		RabbitMQURL:  e.String("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
		TaskQueue:    e.String("RABBITMQ_TASK_QUEUE", "scraping_tasks"),
		AuthMode:     e.OneOf("AUTH_MODE", defaultAuthMode, "jwt", "apigateway"),
		JWTSecret:    e.String("JWT_SECRET", ""),
		JWTJWKSURL:   e.String("JWT_JWKS_URL", ""),
		JWTScopes:    strings.FieldsFunc(e.String("JWT_SCOPES", ""), func(r rune) bool { return r == ',' || r == ' ' }),
		JWTIssuer:    e.String("JWT_ISSUER", ""),
		JWTAudience:  e.String("JWT_AUDIENCE", ""),
		MaxTimeout:   e.Duration("SCRAPE_MAX_TIMEOUT", 25*time.Second, contract.MinTimeout, contract.MaxTimeout),
		ReplyGrace:   e.Duration("SCRAPE_REPLY_GRACE", 1500*time.Millisecond, 100*time.Millisecond, time.Minute),
		MaxBodyBytes: int64(e.Int("SCRAPE_MAX_BODY_BYTES", 256*1024, 1024, contract.MaxMessageBytes-16*1024)),
		LogLevel:     e.OneOf("LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		IdleCheck:    e.Duration("RABBITMQ_IDLE_CHECK", idleDefault, 0, time.Hour),
		EMFNamespace: e.String("METRICS_EMF_NAMESPACE", emfDefault),
		Stage:        e.String("STAGE", "local"),
	}
	c.DefaultTimeout = e.Duration("SCRAPE_DEFAULT_TIMEOUT", min(20*time.Second, c.MaxTimeout), contract.MinTimeout, contract.MaxTimeout)
	if c.DefaultTimeout > c.MaxTimeout {
		e.Fail("SCRAPE_DEFAULT_TIMEOUT (%s) is larger than SCRAPE_MAX_TIMEOUT (%s)", c.DefaultTimeout, c.MaxTimeout)
	}
	switch {
	case c.AuthMode != "jwt":
	case c.JWTJWKSURL != "" && c.JWTSecret != "":
		e.Fail("set JWT_SECRET (HS256 tokens) or JWT_JWKS_URL (an identity provider's RS256/ES256 tokens), not both")
	case c.JWTJWKSURL != "":
		if c.JWTIssuer == "" || c.JWTAudience == "" {
			e.Fail("JWT_JWKS_URL needs JWT_ISSUER and JWT_AUDIENCE: the issuer and audience of the tokens to accept")
		}
	case len(c.JWTSecret) < 32:
		e.Fail("JWT_SECRET must be set to at least 32 characters when AUTH_MODE=jwt (make run creates one in .local/jwt-secret), or set JWT_JWKS_URL")
	}
	return c, e.Err()
}
