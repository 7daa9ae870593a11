package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/scrapeplatform/platform/shared/protect"
	"github.com/scrapeplatform/platform/worker/internal/egress"
	"github.com/scrapeplatform/platform/worker/internal/runner"
)

// protectSecrets hides the worker's environment from the scripts it runs (shared/protect), as
// rc.ProtectSecrets (WORKER_PROTECT_SECRETS) asks.
func protectSecrets(rc runner.Config, log *slog.Logger) {
	if !rc.ProtectSecrets {
		log.Warn("WORKER_PROTECT_SECRETS=false: scripts of the worker's user can read its environment through /proc")
		return
	}
	if err := protect.Process(); err != nil {
		log.Warn("could not hide the worker's environment from scripts", "error", err)
	}
}

// warnRunAsRoot warns when scripts would run as root.
func warnRunAsRoot(rc runner.Config, log *slog.Logger) {
	if rc.RunAs == nil && rc.UIDRange == nil && os.Getuid() == 0 {
		log.Warn("the worker runs as root and so do its scripts: set SCRIPT_UID_RANGE (a uid per script) or SCRIPT_RUN_AS to run them as other users")
	}
}

// startEgress starts the egress proxy ec describes and returns it (the URL scripts get as http_proxy, the
// refusals the task handler adds to failed runs' errors, and its Shutdown). With the proxy disabled
// (EGRESS_PROXY=false) it returns nil.
func startEgress(ec egress.Config, m egress.Metrics, log *slog.Logger) (*egress.Proxy, error) {
	if !ec.Enabled {
		log.Warn("EGRESS_PROXY=false: scripts reach any address, cloud metadata endpoints included")
		return nil, nil
	}
	ec.Metrics, ec.Logger = m, log
	proxy, err := egress.Start(ec)
	if err != nil {
		return nil, fmt.Errorf("egress proxy: %w", err)
	}
	log.Info("egress proxy for scripts", "addr", proxy.URL(), "allow", ec.Policy.String())
	return proxy, nil
}
