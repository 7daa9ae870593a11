package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// errReadyCancelled marks a readiness wait ended by its context rather than
// by the process.
var errReadyCancelled = errors.New("wait for readiness cancelled")

// readyPollInterval is the pause between two health checks.
const readyPollInterval = 100 * time.Millisecond

// WaitReady polls url (GET) until it answers 200, p exits, timeout passes or
// ctx ends, whichever comes first. Errors name the process and quote the
// last lines it printed.
func WaitReady(ctx context.Context, p *Process, url string, timeout time.Duration) error {
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(readyPollInterval)
	defer tick.Stop()

	lastProblem := "no answer yet"
	for {
		problem, ok := probeHTTP(ctx, client, url)
		if ok {
			return nil
		}
		lastProblem = problem
		select {
		case <-p.Done():
			return fmt.Errorf("%s before it was ready", describeExit(p))
		case <-deadline.C:
			return fmt.Errorf("%s (pid %d) was not ready within %s: GET %s: %s%s",
				p.Name(), p.Pid(), timeout, url, lastProblem, formatTail(p))
		case <-ctx.Done():
			return fmt.Errorf("%s: %w: %w", p.Name(), errReadyCancelled, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// probeHTTP performs one health check.
func probeHTTP(ctx context.Context, client *http.Client, url string) (problem string, ok bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err.Error(), false
	}
	resp, err := client.Do(req)
	if err != nil {
		return err.Error(), false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.Status, false
	}
	return "", true
}
