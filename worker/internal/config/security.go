package config

import (
	"strconv"
	"strings"

	sharedconfig "github.com/scrapeplatform/platform/shared/config"
)

// Security configures what scripts may do and reach: containment, limits, the user they run as, egress.
type Security struct {
	// Containment is "auto", "pidns" or "session" (SCRIPT_CONTAINMENT).
	Containment string
	// MaxProcesses bounds the processes and threads a script may start (SCRIPT_MAX_PROCESSES); 0 = no limit.
	MaxProcesses int
	// RunAs is set when scripts run as another user (SCRIPT_RUN_AS = "uid[:gid]").
	RunAs          bool
	RunAsUID       uint32
	RunAsGID       uint32
	EgressProxy    bool   // EGRESS_PROXY
	EgressAllow    string // EGRESS_ALLOW
	ProtectSecrets bool   // WORKER_PROTECT_SECRETS
}

// LoadSecurity reads the script security settings and reports every problem at once.
func LoadSecurity(getenv func(string) string) (Security, error) {
	e := sharedconfig.NewEnv(getenv)
	s := Security{
		Containment:    e.OneOf("SCRIPT_CONTAINMENT", "auto", "auto", "pidns", "session"),
		MaxProcesses:   e.Int("SCRIPT_MAX_PROCESSES", 1024, 0, 1<<22),
		EgressProxy:    e.Bool("EGRESS_PROXY", true),
		EgressAllow:    e.String("EGRESS_ALLOW", ""),
		ProtectSecrets: e.Bool("WORKER_PROTECT_SECRETS", true),
	}
	if v := strings.TrimSpace(e.String("SCRIPT_RUN_AS", "")); v != "" {
		uid, gid, ok := parseUser(v)
		switch {
		case !ok:
			e.Fail("SCRIPT_RUN_AS must be a numeric uid or uid:gid (e.g. 10002:10002), got %q", v)
		case uid == 0:
			e.Fail("SCRIPT_RUN_AS must not be root (uid 0)")
		default:
			s.RunAs, s.RunAsUID, s.RunAsGID = true, uid, gid
		}
	}
	return s, e.Err()
}

func parseUser(v string) (uid, gid uint32, ok bool) {
	u, g, hasGroup := strings.Cut(v, ":")
	un, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		return 0, 0, false
	}
	gn := un
	if hasGroup {
		if gn, err = strconv.ParseUint(g, 10, 32); err != nil {
			return 0, 0, false
		}
	}
	return uint32(un), uint32(gn), true
}
