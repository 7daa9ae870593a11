package lambdaedge

import (
	"errors"
	"time"

	"github.com/scrapeplatform/platform/functions/gateway"
	sharedconfig "github.com/scrapeplatform/platform/shared/config"
)

// Lambda defaults: what suits a process that is frozen and thawed between invocations and has no /metrics.
const (
	// DefaultIdleCheck is RABBITMQ_IDLE_CHECK's default in Lambda: a connection idle this long is checked
	// before use (a frozen environment's connection may have died).
	DefaultIdleCheck = 15 * time.Second
	// DefaultEMFNamespace is METRICS_EMF_NAMESPACE's default in Lambda.
	DefaultEMFNamespace = "ScrapingPlatform"
)

// Config is the Lambda bootstrap's configuration: the HTTP API's, with the Lambda defaults, and its
// CloudWatch metrics.
type Config struct {
	Gateway gateway.Config
	// EMFNamespace, when set, makes the handler record metrics as CloudWatch EMF lines on stdout.
	EMFNamespace string
	// Stage names the deployment stage in EMF metrics.
	Stage string
}

// LoadConfig reads the Lambda bootstrap's configuration through getenv and reports every problem at once.
// AUTH_MODE is accepted for compatibility with existing stacks, but only as "apigateway": in Lambda, API
// Gateway's authorizers authenticate; verifying tokens here is the local gateway's (cmd/gateway-local).
func LoadConfig(getenv func(string) string) (Config, error) {
	gw, gwErr := gateway.LoadConfig(getenv)
	e := sharedconfig.NewEnv(getenv)
	e.OneOf("AUTH_MODE", "apigateway", "apigateway")
	if getenv("RABBITMQ_IDLE_CHECK") == "" {
		gw.IdleCheck = DefaultIdleCheck
	}
	c := Config{
		Gateway:      gw,
		EMFNamespace: e.String("METRICS_EMF_NAMESPACE", DefaultEMFNamespace),
		Stage:        e.String("STAGE", "local"),
	}
	return c, errors.Join(gwErr, e.Err())
}
