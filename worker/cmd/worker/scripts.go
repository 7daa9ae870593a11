package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scrapeplatform/platform/worker/internal/config"
	"github.com/scrapeplatform/platform/worker/internal/repository"
	"github.com/scrapeplatform/platform/worker/internal/telemetry"
)

// openRepository builds the script repository cfg names. A caching repository (s3, git, http) gets its
// metrics registered, and SIGHUP makes it ask its remote about every script on the next request (in
// AWS, where signalling every task is impractical, SCRIPT_CACHE_TTL bounds how stale a script can be).
func openRepository(ctx context.Context, cfg config.Config, reg prometheus.Registerer, log *slog.Logger) (repository.Repository, error) {
	opts := repository.Options{
		Type: cfg.RepositoryType,
		URL:  cfg.RepositoryURL,
		Git:  repository.GitConfig{Ref: cfg.RepositoryRef, Subdir: cfg.RepositorySubdir},
		S3: repository.S3Config{
			Bucket: cfg.S3.Bucket, Prefix: cfg.S3.Prefix, Region: cfg.S3.Region,
			AccessKey: cfg.S3.AccessKey, SecretKey: cfg.S3.SecretKey, Endpoint: cfg.S3.Endpoint,
		},
		Cache: repository.CacheOptions{
			Dir: cfg.ScriptCacheDir, TTL: cfg.ScriptCacheTTL, FetchTimeout: cfg.ScriptFetchTimeout,
			Limits: repository.Limits{MaxBytes: cfg.ScriptMaxBytes, MaxFiles: cfg.ScriptMaxFiles},
			Logger: log,
		},
	}
	if cfg.RepositoryType != repository.TypeLocal {
		opts.Cache.Metrics = telemetry.NewScripts(reg)
	}
	repo, err := repository.Open(ctx, opts)
	if err != nil {
		return nil, err
	}
	if r, ok := repo.(repository.Refresher); ok {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		go func() {
			defer signal.Stop(hup)
			for {
				select {
				case <-ctx.Done():
					return
				case <-hup:
					log.Info("SIGHUP: every script will be checked against the repository on its next request")
					r.Invalidate("")
				}
			}
		}()
	}
	return repo, nil
}
