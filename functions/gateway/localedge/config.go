package localedge

import (
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/scrapeplatform/platform/functions/gateway"
	"github.com/scrapeplatform/platform/shared/auth"
	sharedconfig "github.com/scrapeplatform/platform/shared/config"
)

// Config is the local gateway's configuration: the HTTP API's, and how tokens are verified here.
type Config struct {
	Gateway   gateway.Config
	JWTSecret string
	// JWTJWKSURL, when set, has the gateway verify RS256/ES256 tokens with the identity provider's keys
	// instead of an HS256 secret; JWTIssuer and JWTAudience are then required.
	JWTJWKSURL  string
	JWTIssuer   string
	JWTAudience string
	// JWTScopes, when set, are required on /scrape and /status (one of them), like the stage's jwtScopes on
	// API Gateway's routes.
	JWTScopes []string
	// JWTMaxTTL is the longest lifetime a token may have (exp-iat, or exp-now without iat).
	JWTMaxTTL time.Duration
	// BodyTimeout bounds the arrival of a request's body (408 past it); MaxConnections caps the
	// connections the server holds at a time (503 past it, before reading a request).
	BodyTimeout    time.Duration
	MaxConnections int
	// ManagementURL, when set (RABBITMQ_MANAGEMENT_URL, credentials in it: a monitoring user), has GET
	// /status add the workers' in-flight tasks and capacity, read from the broker's management API.
	ManagementURL string
}

// DefaultMaxConnections is GATEWAY_MAX_CONNECTIONS' default: room for 10,000 stalled connections with
// /health still served, well under a common descriptor limit (cmd/gateway-local lowers the cap to fit the
// process's own limit).
const DefaultMaxConnections = 16384

// LoadConfig reads the local gateway's configuration through getenv and reports every problem at once.
// AUTH_MODE is accepted for compatibility with existing environments, but only as "jwt": the local gateway
// always verifies tokens itself; API Gateway's authorizers are the Lambda bootstrap's (cmd/gateway).
func LoadConfig(getenv func(string) string) (Config, error) {
	gw, gwErr := gateway.LoadConfig(getenv)
	e := sharedconfig.NewEnv(getenv)
	e.OneOf("AUTH_MODE", "jwt", "jwt")
	c := Config{
		Gateway:        gw,
		JWTSecret:      e.String("JWT_SECRET", ""),
		JWTJWKSURL:     e.String("JWT_JWKS_URL", ""),
		JWTScopes:      strings.FieldsFunc(e.String("JWT_SCOPES", ""), func(r rune) bool { return r == ',' || r == ' ' }),
		JWTIssuer:      e.String("JWT_ISSUER", ""),
		JWTAudience:    e.String("JWT_AUDIENCE", ""),
		JWTMaxTTL:      e.Duration("JWT_MAX_TTL", auth.DefaultMaxTTL, time.Minute, 30*24*time.Hour),
		BodyTimeout:    e.Duration("GATEWAY_BODY_TIMEOUT", 10*time.Second, 100*time.Millisecond, 5*time.Minute),
		MaxConnections: e.Int("GATEWAY_MAX_CONNECTIONS", DefaultMaxConnections, 1, 1<<20),
		ManagementURL:  e.String("RABBITMQ_MANAGEMENT_URL", ""),
	}
	if c.ManagementURL != "" {
		if u, err := url.Parse(c.ManagementURL); err != nil || u.Host == "" || u.User == nil {
			e.Fail("RABBITMQ_MANAGEMENT_URL must be an absolute URL with a user's credentials (http://user:password@host:15672)")
		}
	}
	switch {
	case c.JWTJWKSURL != "" && c.JWTSecret != "":
		e.Fail("set JWT_SECRET (HS256 tokens) or JWT_JWKS_URL (an identity provider's RS256/ES256 tokens), not both")
	case c.JWTJWKSURL != "":
		if c.JWTIssuer == "" || c.JWTAudience == "" {
			e.Fail("JWT_JWKS_URL needs JWT_ISSUER and JWT_AUDIENCE: the issuer and audience of the tokens to accept")
		}
	case len(c.JWTSecret) < 32:
		e.Fail("JWT_SECRET must be set to at least 32 characters when AUTH_MODE=jwt (make run creates one in .local/jwt-secret), or set JWT_JWKS_URL")
	}
	return c, errors.Join(gwErr, e.Err())
}
