package smoke

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// LoadConfig reads the check's settings (all but the API URL and region, which come from the stack's
// outputs) and reports every problem at once.
func LoadConfig(getenv func(string) string) (Config, error) {
	var errs []error
	str := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	dur := func(name string, def time.Duration) time.Duration {
		v := getenv(name)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q is not a positive duration such as 10m", name, v))
			return def
		}
		return d
	}
	c := Config{
		JWT:      getenv("SMOKE_JWT"),
		Script:   str("SMOKE_SCRIPT", "example_scraper"),
		Params:   json.RawMessage(str("SMOKE_PARAMS", `{"url":"https://example.com/"}`)),
		Timeout:  dur("SMOKE_TIMEOUT", 10*time.Minute),
		Interval: dur("SMOKE_INTERVAL", 15*time.Second),
	}
	switch v := str("SMOKE_REQUIRE_JWT", "1"); v {
	case "1", "true":
		c.RequireJWT = true
	case "0", "false":
	default:
		errs = append(errs, fmt.Errorf("SMOKE_REQUIRE_JWT=%q: use 1 or 0", v))
	}
	var params map[string]any
	if err := json.Unmarshal(c.Params, &params); err != nil {
		errs = append(errs, fmt.Errorf("SMOKE_PARAMS is not a JSON object: %v", err))
	}
	return c, errors.Join(errs...)
}
