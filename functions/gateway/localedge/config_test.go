package localedge

import (
	"strings"
	"testing"
	"time"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestLoadConfigRequiresSecretInJWTMode(t *testing.T) {
	t.Parallel()
	_, err := LoadConfig(func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "JWT_SECRET") {
		t.Fatalf("want a JWT_SECRET error, got %v", err)
	}
	jwks := "https://idp.example.com/.well-known/jwks.json"
	if c, err := LoadConfig(env("JWT_JWKS_URL", jwks, "JWT_ISSUER", "https://idp.example.com/", "JWT_AUDIENCE", "api")); err != nil || c.JWTJWKSURL != jwks {
		t.Fatalf("a JWKS instead of a secret: %+v %v", c, err)
	}
	for want, e := range map[string]func(string) string{
		"not both":                    env("JWT_JWKS_URL", jwks, "JWT_SECRET", strings.Repeat("s", 32), "JWT_ISSUER", "i", "JWT_AUDIENCE", "a"),
		"JWT_ISSUER and JWT_AUDIENCE": env("JWT_JWKS_URL", jwks, "JWT_ISSUER", "https://idp.example.com/"),
		"AUTH_MODE":                   env("AUTH_MODE", "apigateway", "JWT_SECRET", strings.Repeat("s", 32)),
	} {
		if _, err := LoadConfig(e); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want an error about %q, got %v", want, err)
		}
	}
	// AUTH_MODE=jwt, as existing environments set it, is accepted.
	if _, err := LoadConfig(env("AUTH_MODE", "jwt", "JWT_SECRET", strings.Repeat("s", 32))); err != nil {
		t.Errorf("AUTH_MODE=jwt: %v", err)
	}
}

func TestLoadConfigMaxTTL(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("s", 32)
	if c, err := LoadConfig(env("JWT_SECRET", secret)); err != nil || c.JWTMaxTTL != 24*time.Hour {
		t.Fatalf("default JWT_MAX_TTL: %v %v", c.JWTMaxTTL, err)
	}
	if c, err := LoadConfig(env("JWT_SECRET", secret, "JWT_MAX_TTL", "1h")); err != nil || c.JWTMaxTTL != time.Hour {
		t.Fatalf("JWT_MAX_TTL=1h: %v %v", c.JWTMaxTTL, err)
	}
	if _, err := LoadConfig(env("JWT_SECRET", secret, "JWT_MAX_TTL", "0")); err == nil || !strings.Contains(err.Error(), "JWT_MAX_TTL") {
		t.Fatalf("JWT_MAX_TTL=0: %v", err)
	}
}
