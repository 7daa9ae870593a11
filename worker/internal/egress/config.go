package egress

import "github.com/scrapeplatform/platform/shared/config"

// LoadConfig reads the proxy's settings from the environment (worker/README.md, "Configuration"):
// EGRESS_PROXY (Enabled, default true) and EGRESS_ALLOW (the Policy's exceptions, see ParsePolicy). e
// collects every problem. Logger and Metrics are the caller's to set.
func LoadConfig(e *config.Env) Config {
	c := Config{Enabled: e.Bool("EGRESS_PROXY", true)}
	allow := e.String("EGRESS_ALLOW", "")
	policy, err := ParsePolicy(allow)
	if err != nil {
		e.Fail("EGRESS_ALLOW=%q: %v", allow, err)
	}
	c.Policy = policy
	return c
}
