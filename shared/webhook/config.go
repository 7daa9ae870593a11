package webhook

import (
	"fmt"
	"strings"
	"time"

	"github.com/scrapeplatform/platform/shared/config"
)

// Config is the sender's side of webhooks. LoadConfig reads it from these variables:
//
//	variable              default          meaning
//	WEBHOOK_SECRET        (none)           the deployment's signing secrets, whsec_<base64>, separated by
//	                                       spaces or commas; the first is the current key, every one signs
//	                                       each delivery (one signature each) during a rotation
//	WEBHOOK_MAX_AGE       24h              how long failed deliveries are retried after the first attempt
//	                                       (1s to 72h); then the delivery is dead-lettered and failed
//	WEBHOOK_RETRY_DELAYS  1s,5s,30s,2m     the first retry delays (each 1ms to 24h, at most 20); later
//	                                       retries wait 4× the previous delay, at most 4h
//	WEBHOOK_CONCURRENCY   8                deliveries in flight at once per worker (1 to 256)
//	WEBHOOK_TIMEOUT       10s              bound of one delivery's HTTP request (1s to 60s)
type Config struct {
	// Secrets sign deliveries: Secrets[0] is the current key, the others are being rotated out.
	Secrets []Secret
	// Schedule plans the retries; its Total is WEBHOOK_MAX_AGE.
	Schedule    Schedule
	Concurrency int
	Timeout     time.Duration
}

// The defaults of Config.
const (
	DefaultConcurrency = 8
	DefaultTimeout     = 10 * time.Second
	// MaxRetryDelays bounds the length of WEBHOOK_RETRY_DELAYS: each distinct delay is a broker queue.
	MaxRetryDelays = 20
)

// LoadConfig reads Config from getenv, reporting every problem at once. Without WEBHOOK_SECRET, Secrets
// is empty (the caller decides whether deliveries then wait: the worker starts no deliverer).
func LoadConfig(getenv func(string) string) (Config, error) {
	e := config.NewEnv(getenv)
	c := LoadConfigFrom(e)
	return c, e.Err()
}

// LoadConfigFrom reads Config from e, adding its problems to e's (for a binary that reads all its settings
// through one config.Env).
func LoadConfigFrom(e *config.Env) Config {
	c := Config{Schedule: DefaultSchedule()}
	c.Schedule.Total = e.Duration("WEBHOOK_MAX_AGE", c.Schedule.Total, time.Second, 72*time.Hour)
	if raw := e.String("WEBHOOK_RETRY_DELAYS", ""); raw != "" {
		delays, err := ParseDelays(raw)
		if err != nil {
			e.Fail("WEBHOOK_RETRY_DELAYS: %v", err)
		} else {
			c.Schedule.Initial = delays
		}
	}
	c.Concurrency = e.Int("WEBHOOK_CONCURRENCY", DefaultConcurrency, 1, 256)
	c.Timeout = e.Duration("WEBHOOK_TIMEOUT", DefaultTimeout, time.Second, time.Minute)
	if raw := e.String("WEBHOOK_SECRET", ""); raw != "" {
		secrets, err := ParseSecrets(raw)
		if err != nil {
			e.Fail("WEBHOOK_SECRET: %v", err) // the error never holds the secret itself
		}
		c.Secrets = secrets
	}
	return c
}

// ParseDelays reads a list of retry delays such as "1s,5s,30s,2m" (Go durations separated by commas or
// spaces), each from 1 ms to 24 h, at most MaxRetryDelays of them.
func ParseDelays(list string) ([]time.Duration, error) {
	fields := strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if len(fields) == 0 {
		return nil, fmt.Errorf("no delay in the list")
	}
	if len(fields) > MaxRetryDelays {
		return nil, fmt.Errorf("%d delays; at most %d", len(fields), MaxRetryDelays)
	}
	delays := make([]time.Duration, 0, len(fields))
	for i, f := range fields {
		d, err := time.ParseDuration(f)
		if err != nil {
			return nil, fmt.Errorf("delay %d (%q) is not a duration such as 30s or 2m", i+1, f)
		}
		if d < time.Millisecond || d > 24*time.Hour {
			return nil, fmt.Errorf("delay %d (%s) must be from 1ms to 24h", i+1, d)
		}
		delays = append(delays, d)
	}
	return delays, nil
}

// ParseSecrets reads a list of whsec_ secrets separated by spaces or commas.
func ParseSecrets(list string) ([]Secret, error) {
	fields := strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	if len(fields) == 0 {
		return nil, fmt.Errorf("webhook: no secret in the list")
	}
	secrets := make([]Secret, 0, len(fields))
	for i, f := range fields {
		s, err := ParseSecret(f)
		if err != nil {
			return nil, fmt.Errorf("secret %d: %w", i+1, err)
		}
		secrets = append(secrets, s)
	}
	return secrets, nil
}
