package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scrapeplatform/platform/worker/internal/config"
	"github.com/scrapeplatform/platform/worker/internal/egress"
	"github.com/scrapeplatform/platform/worker/internal/runner"
	"github.com/scrapeplatform/platform/worker/internal/telemetry"
)

// protectSecrets hides the worker's environment from the scripts it runs (runner.ProtectProcess).
func protectSecrets(sec config.Security, log *slog.Logger) {
	if !sec.ProtectSecrets {
		log.Warn("WORKER_PROTECT_SECRETS=false: scripts of the worker's user can read its environment through /proc")
		return
	}
	if err := runner.ProtectProcess(); err != nil {
		log.Warn("could not hide the worker's environment from scripts", "error", err)
	}
}

// secureRunner applies the security settings to the runner's configuration and starts the egress proxy.
// stop closes the proxy.
func secureRunner(rc *runner.Config, sec config.Security, reg prometheus.Registerer, log *slog.Logger) (stop func(), err error) {
	rc.Containment = sec.Containment
	rc.MaxProcesses = sec.MaxProcesses
	if sec.MaxProcesses == 0 {
		rc.MaxProcesses = -1 // SCRIPT_MAX_PROCESSES=0: no limit
	}
	if sec.RunAs {
		rc.RunAs = &runner.Credential{UID: sec.RunAsUID, GID: sec.RunAsGID}
	} else if os.Getuid() == 0 {
		log.Warn("the worker runs as root and so do its scripts: set SCRIPT_RUN_AS to run them as another user")
	}
	if !sec.EgressProxy {
		log.Warn("EGRESS_PROXY=false: scripts reach any address, cloud metadata endpoints included")
		return func() {}, nil
	}
	policy, err := egress.ParsePolicy(sec.EgressAllow)
	if err != nil {
		return nil, err
	}
	proxy, err := egress.Start(egress.Config{Policy: policy, Metrics: telemetry.NewEgress(reg), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("egress proxy: %w", err)
	}
	rc.ProxyURL = proxy.URL()
	log.Info("egress proxy for scripts", "addr", proxy.URL(), "allow", policy.String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = proxy.Shutdown(ctx)
	}, nil
}
