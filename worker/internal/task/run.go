package task

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/worker/internal/envcache"
	"github.com/scrapeplatform/platform/worker/internal/manifest"
	"github.com/scrapeplatform/platform/worker/internal/repository"
	"github.com/scrapeplatform/platform/worker/internal/runner"
)

// run resolves and runs the script. requeue is set when the run was cut short by a forced shutdown.
//
// ctx ends the run: on shutdown (h.hardCtx) it is requeued; a job's run cancelled by its owner (ctx's cause
// errJobCancelled) ends with a cancelled reply. maxResult, when positive, is the run's result limit (a job's).
func (h *Handler) run(ctx context.Context, log *slog.Logger, req *contract.Request, timeout time.Duration, maxResult int) (_ *contract.Reply, requeue bool) {
	script, err := h.cfg.Repository.Resolve(ctx, req.ScriptName)
	if errors.Is(err, repository.ErrNotFound) {
		return contract.Failed(req, contract.CodeScriptNotFound, fmt.Sprintf("script %q was not found in the script repository", req.ScriptName)), false
	}
	if err != nil {
		if ctx.Err() != nil {
			return stopped(ctx, req)
		}
		log.Error("resolve script", "error", err)
		return contract.Failed(req, contract.CodeInternal, fmt.Sprintf("could not load script %q: %v", req.ScriptName, err)), false
	}
	log = log.With("script_version", script.Version)

	lay := h.layoutOf(script)
	man := lay.manifest
	if lay.manifestErr != nil {
		return contract.Failed(req, contract.CodeInvalidManifest, fmt.Sprintf("script %q has a bad manifest: %v", req.ScriptName, lay.manifestErr)), false
	}
	if req.TimeoutDefaulted && man.Timeout > 0 {
		timeout = min(timeout, time.Duration(man.Timeout*float64(time.Second)))
	}
	isolation := man.Isolation
	if isolation == "" {
		isolation = h.cfg.Defaults.Isolation // the manifest does not say: the worker's default
	}
	if isolation == "" {
		isolation = manifest.Warm
	}
	job := runner.Job{
		RequestID:        req.RequestID,
		ScriptName:       req.ScriptName,
		ScriptDir:        script.Dir,
		Parameters:       req.Parameters,
		Timeout:          timeout,
		Version:          script.Version,
		Content:          script.Content,
		MemoryLimitBytes: int64(man.MemoryLimitMB) << 20,
		Warm:             isolation == manifest.Warm || isolation == manifest.Threads,
		Threads:          isolation == manifest.Threads,
		MaxResultBytes:   maxResult,
	}

	// Everything before the script starts waits no longer than the budget allows.
	waitCtx, cancelWait := context.WithDeadline(ctx, req.StartBy())
	defer cancelWait()
	if lay.reqFile != "" {
		asked := h.cfg.Now()
		lease, reply := h.environment(waitCtx, log, req, lay.reqFile)
		if reply != nil {
			if ctx.Err() != nil {
				return stopped(ctx, req)
			}
			return reply, false
		}
		defer lease.Release()
		job.Python = lease.Python
		// An environment that became ready only after most of the budget went to building it would leave
		// the script a sliver of its timeout and a misleading "timeout" reply: say instead that the
		// dependencies were being installed, which tells the caller to retry (the environment is ready now).
		waited, left := h.cfg.Now().Sub(asked), req.RunTime(h.cfg.Now())
		if left < job.Timeout/2 && waited > left {
			return contract.Failed(req, contract.CodeDependenciesInstalling, fmt.Sprintf("the dependencies of script %q were installed just now, after %s of this request's budget; retry: they are ready", req.ScriptName, waited.Round(time.Millisecond))), false
		}
	}
	release, ok := h.acquireScriptSlot(waitCtx, req.ScriptName, man.Concurrency)
	if !ok {
		if ctx.Err() != nil {
			return stopped(ctx, req)
		}
		return contract.Failed(req, contract.CodeScriptTimeout, fmt.Sprintf("script %q allows %d concurrent runs per worker and none became free before the deadline", req.ScriptName, man.Concurrency)), false
	}
	defer release()
	// Time spent waiting for the environment or a slot comes off the script's share.
	job.Timeout = min(job.Timeout, req.RunTime(h.cfg.Now()))
	if job.Timeout <= 0 {
		return contract.Failed(req, contract.CodeScriptTimeout, "no time was left to run the script before the caller's deadline"), false
	}

	started := h.cfg.Now()
	res, err := h.cfg.Runner.Run(ctx, job)
	finished := h.cfg.Now()
	if err != nil {
		if contract.Classify(err) == contract.Cancelled && ctx.Err() != nil {
			if reply, requeue := stopped(ctx, req); !requeue {
				log.Info("script stopped: its job was cancelled")
				reply.ExecutionTime, reply.ScriptVersion = finished.Sub(started).Seconds(), script.Version
				reply.StartedAt, reply.FinishedAt = started.UTC(), finished.UTC()
				return reply, false
			}
			log.Warn("script stopped by shutdown; requeueing", "error", err)
			return nil, true
		}
		log.Error("run script", "error", err)
		return contract.Failed(req, contract.CodeInternal, "the worker could not run the script: "+err.Error()), false
	}
	h.cfg.Metrics.ScriptRan(req.ScriptName, res.Duration)
	if why, ok := h.egressRefusal(req, res, started); ok {
		res.Err.Message += "; " + why
	}
	reply := &contract.Reply{
		Status:        res.Status,
		Data:          res.Data,
		Error:         res.Err,
		ExecutionTime: res.Duration.Seconds(),
		ScriptVersion: script.Version,
		StartedAt:     started.UTC(),
		FinishedAt:    finished.UTC(),
	}
	return reply, false
}

// environment returns a lease on the script's dependency environment, or the reply that explains why
// there is none.
func (h *Handler) environment(ctx context.Context, log *slog.Logger, req *contract.Request, reqFile string) (*envcache.Lease, *contract.Reply) {
	if h.cfg.Environments == nil {
		return nil, contract.Failed(req, contract.CodeDependencyInstallFailed, "this worker cannot install script dependencies (no environment cache configured)")
	}
	lease, err := h.cfg.Environments.Get(ctx, reqFile)
	if err == nil {
		return lease, nil
	}
	var ie *envcache.InstallError
	switch {
	case errors.As(err, &ie):
		log.Warn("script dependencies could not be installed", "error", ie.Reason)
		reply := contract.Failed(req, contract.CodeDependencyInstallFailed, fmt.Sprintf("the requirements of script %q could not be installed: %s", req.ScriptName, ie.Reason))
		reply.Error.Detail = ie.Output
		return nil, reply
	case ctx.Err() != nil:
		return nil, contract.Failed(req, contract.CodeDependenciesInstalling, fmt.Sprintf("the dependencies of script %q are still being installed on this worker; retry in a moment", req.ScriptName))
	}
	log.Error("script environment", "error", err)
	return nil, contract.Failed(req, contract.CodeInternal, fmt.Sprintf("could not prepare the environment of script %q: %v", req.ScriptName, err))
}

// acquireScriptSlot enforces a manifest's per-script concurrency cap. It reports false when ctx ends first.
func (h *Handler) acquireScriptSlot(ctx context.Context, script string, limit int) (release func(), ok bool) {
	if limit <= 0 {
		return func() {}, true
	}
	h.limitsMu.Lock()
	if h.limits == nil {
		h.limits = map[string]chan struct{}{}
	}
	sem, found := h.limits[script]
	if !found || cap(sem) != limit {
		sem = make(chan struct{}, limit) // a changed cap takes effect for new runs
		h.limits[script] = sem
	}
	h.limitsMu.Unlock()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, true
	case <-ctx.Done():
		return nil, false
	}
}

// errJobCancelled is the cause with which a job's run is stopped when its owner cancels it.
var errJobCancelled = errors.New("the job was cancelled by its owner")

// stopped is what a run that ctx ended becomes: the cancelled reply of a cancelled job, or a requeue (a
// shutdown).
func stopped(ctx context.Context, req *contract.Request) (*contract.Reply, bool) {
	if errors.Is(context.Cause(ctx), errJobCancelled) {
		return contract.Failed(req, contract.CodeCancelled, errJobCancelled.Error()), false
	}
	return nil, true
}
