package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/scrapeplatform/platform/worker/internal/repository"
)

// openRepository opens the script repository opts describe, recording into m. For a caching repository
// (s3, git, http) SIGHUP makes it ask its remote about every script on the next request (in AWS, where
// signalling every task is impractical, SCRIPT_CACHE_TTL bounds how stale a script can be).
func openRepository(ctx context.Context, opts repository.Options, m repository.Metrics, log *slog.Logger) (repository.Repository, error) {
	opts.Cache.Logger, opts.Cache.Metrics = log, m
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
