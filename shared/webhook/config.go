package webhook

import (
	"fmt"
	"strings"
	"time"

	"github.com/scrapeplatform/platform/shared/config"
)

// Config is the sender's side of webhooks. LoadConfig reads it from these variables:
//
//	variable             default  meaning
//	WEBHOOK_SECRETS      (none)   the deployment's signing secrets, whsec_<base64>, separated by spaces or
//	                              commas; the first signs, all are sent during a rotation
//	WEBHOOK_RETRY_TOTAL  24h      how long failed deliveries are retried (1m to 72h)
type Config struct {
	// Secrets sign deliveries: Secrets[0] is the current key, the others are being rotated out.
	Secrets  []Secret
	Schedule Schedule
}

// LoadConfig reads Config from getenv, reporting every problem at once. Without WEBHOOK_SECRETS, Secrets
// is empty (the caller decides whether callbacks are then refused).
func LoadConfig(getenv func(string) string) (Config, error) {
	e := config.NewEnv(getenv)
	c := Config{Schedule: DefaultSchedule()}
	c.Schedule.Total = e.Duration("WEBHOOK_RETRY_TOTAL", c.Schedule.Total, time.Minute, 72*time.Hour)
	if raw := e.String("WEBHOOK_SECRETS", ""); raw != "" {
		secrets, err := ParseSecrets(raw)
		if err != nil {
			e.Fail("WEBHOOK_SECRETS: %v", err)
		}
		c.Secrets = secrets
	}
	return c, e.Err()
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
