package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scrapeplatform/platform/shared/portprobe"
)

// Names of the binaries Start runs from Options.BinDir.
const (
	GatewayBinary = "gateway-local"
	WorkerBinary  = "worker"
)

// Defaults applied by Start to zero Options fields.
const (
	DefaultGatewayAddr           = "127.0.0.1:8080"
	DefaultWorkers               = 2
	DefaultWorkerMetricsBasePort = 9100
	DefaultReadyTimeout          = 30 * time.Second
)

// startFailureStopTimeout bounds stopping what Start already started when a
// later step fails.
const startFailureStopTimeout = 10 * time.Second

// Options configures Start. Zero fields take the defaults above.
type Options struct {
	// BinDir holds the gateway-local and worker binaries.
	BinDir string
	// GatewayAddr is the gateway's listen address (GATEWAY_ADDR).
	GatewayAddr string
	// Workers is how many workers to start; 0 means DefaultWorkers. (To run
	// the gateway alone, start it with StartProcess and WaitReady.)
	Workers int
	// WorkerMetricsBasePort: worker i (0-based) serves /healthz and /metrics
	// on 127.0.0.1:(WorkerMetricsBasePort+1+i).
	WorkerMetricsBasePort int
	// Env is the base environment of every child; `make run` passes
	// os.Environ() so that every variable the user set reaches them. The
	// per-process variables (GATEWAY_ADDR, WORKER_ID, WORKER_METRICS_ADDR)
	// are appended after it and win. Nil gives the children nothing but
	// those: no PATH, no RABBITMQ_URL.
	Env []string
	// GatewayEnv and WorkerEnv are appended to Env for the gateway and for each worker (e.g. their own
	// RABBITMQ_URL, with the least-privilege users of ProvisionBrokerUsers); they win over Env.
	GatewayEnv, WorkerEnv []string
	// Output receives the children's stdout and stderr, each line prefixed
	// "[gateway] " or "[worker-N] ". Nil discards it.
	Output io.Writer
	// ReadyTimeout bounds the wait for every process to answer its health
	// check.
	ReadyTimeout time.Duration
	// Logger receives the supervisor's own messages. Nil discards them.
	Logger *slog.Logger
}

func (o *Options) applyDefaults() error {
	if o.GatewayAddr == "" {
		o.GatewayAddr = DefaultGatewayAddr
	}
	if o.Workers < 0 {
		return fmt.Errorf("workers must not be negative, got %d", o.Workers)
	}
	if o.Workers == 0 {
		o.Workers = DefaultWorkers
	}
	if o.WorkerMetricsBasePort == 0 {
		o.WorkerMetricsBasePort = DefaultWorkerMetricsBasePort
	}
	if last := o.WorkerMetricsBasePort + o.Workers; o.WorkerMetricsBasePort < 0 || last > 65535 {
		return fmt.Errorf("worker metrics ports %d..%d are out of range", o.WorkerMetricsBasePort+1, last)
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultReadyTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Stack is a running gateway and its workers.
type Stack struct {
	gatewayURL string
	workerURLs []string
	procs      []*Process
	log        *slog.Logger

	exited   chan *Process
	stopping atomic.Bool
	stopOnce sync.Once
	stopErr  error
}

// Start starts the gateway and o.Workers workers, each in its own process
// group, and waits until every one answers its health check (gateway: GET
// /health, worker: GET /healthz, both 200). ctx bounds only this start-up;
// the stack then runs until Stop.
//
// If anything fails — a binary is missing, an address is taken, a process
// exits or is not ready within ReadyTimeout — Start stops what it started and
// returns an error naming the process and quoting the last lines it printed.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if err := o.applyDefaults(); err != nil {
		return nil, err
	}
	gatewayBin := filepath.Join(o.BinDir, GatewayBinary)
	workerBin := filepath.Join(o.BinDir, WorkerBinary)
	for _, bin := range []string{gatewayBin, workerBin} {
		if err := checkExecutable(bin); err != nil {
			return nil, fmt.Errorf("%w (build the binaries first: make build)", err)
		}
	}

	workerAddrs := make([]string, o.Workers)
	for i := range workerAddrs {
		workerAddrs[i] = net.JoinHostPort("127.0.0.1", strconv.Itoa(o.WorkerMetricsBasePort+1+i))
	}
	// A server already on one of our addresses would answer our health check
	// for a process that in fact failed to bind, so refuse up front.
	if err := checkAddrFree("gateway", o.GatewayAddr); err != nil {
		return nil, err
	}
	for i, addr := range workerAddrs {
		if err := checkAddrFree(workerName(i), addr); err != nil {
			return nil, err
		}
	}

	s := &Stack{
		gatewayURL: "http://" + dialAddr(o.GatewayAddr),
		log:        o.Logger,
	}
	for _, addr := range workerAddrs {
		s.workerURLs = append(s.workerURLs, "http://"+addr)
	}

	// The processes outlive ctx: it bounds the start-up only.
	procCtx := context.WithoutCancel(ctx)
	start := func(name, bin string, extra ...string) error {
		env := append(append([]string(nil), o.Env...), extra...)
		p, err := StartProcess(procCtx, name, bin, nil, env, o.Output)
		if err != nil {
			return err
		}
		o.Logger.Info("started", "process", name, "pid", p.Pid())
		s.procs = append(s.procs, p)
		return nil
	}
	err := start("gateway", gatewayBin, append(slices.Clone(o.GatewayEnv), "GATEWAY_ADDR="+o.GatewayAddr)...)
	for i := 0; err == nil && i < o.Workers; i++ {
		err = start(workerName(i), workerBin, append(slices.Clone(o.WorkerEnv),
			"WORKER_ID="+workerName(i),
			"WORKER_METRICS_ADDR="+workerAddrs[i])...)
	}
	if err == nil {
		err = s.waitReady(ctx, o.ReadyTimeout)
	}
	if err != nil {
		if stopErr := s.stopAll(startFailureStopTimeout); stopErr != nil {
			o.Logger.Warn("stopping after a failed start", "err", stopErr)
		}
		return nil, fmt.Errorf("start local stack: %w", err)
	}

	s.exited = make(chan *Process, len(s.procs))
	for _, p := range s.procs {
		go func() {
			<-p.Done()
			if !s.stopping.Load() {
				s.exited <- p
			}
		}()
	}
	o.Logger.Info("local stack ready", "gateway", s.gatewayURL, "workers", len(s.workerURLs))
	return s, nil
}

// waitReady waits for every process's health check. The first failure
// cancels the other waits, so the error names the process that failed, not
// the ones interrupted because of it.
func (s *Stack) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	urls := append([]string{s.gatewayURL + "/health"}, s.workerHealthURLs()...)
	errs := make([]error, len(s.procs))
	var wg sync.WaitGroup
	for i, p := range s.procs {
		wg.Go(func() {
			errs[i] = WaitReady(ctx, p, urls[i], timeout)
			if errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	var failed []error
	for _, err := range errs {
		if err != nil && !errors.Is(err, errReadyCancelled) {
			failed = append(failed, err)
		}
	}
	if len(failed) == 0 {
		for _, err := range errs {
			if err != nil {
				// Only cancellations: the caller's ctx ended.
				return err
			}
		}
	}
	return errors.Join(failed...)
}

func (s *Stack) workerHealthURLs() []string {
	urls := make([]string, len(s.workerURLs))
	for i, u := range s.workerURLs {
		urls[i] = u + "/healthz"
	}
	return urls
}

// GatewayURL returns the gateway's base URL, e.g. http://127.0.0.1:8080.
func (s *Stack) GatewayURL() string { return s.gatewayURL }

// WorkerMetricsURLs returns each worker's metrics base URL (serving /healthz
// and /metrics), in worker order.
func (s *Stack) WorkerMetricsURLs() []string { return append([]string(nil), s.workerURLs...) }

// Processes returns the gateway first, then the workers in order.
func (s *Stack) Processes() []*Process { return append([]*Process(nil), s.procs...) }

// Exited receives each process that exits before Stop is called — for the
// local stack, always a failure worth shutting down for. It is buffered for
// every process, so nobody has to read it.
func (s *Stack) Exited() <-chan *Process { return s.exited }

// Stop sends SIGTERM to every process group at once (the gateway stops taking
// requests while the workers drain theirs), waits up to timeout, then
// SIGKILLs the groups still running. It returns when every process is
// reaped, with an error for each one that had to be killed or exited with a
// failure status. It is idempotent: later calls return the first result.
func (s *Stack) Stop(timeout time.Duration) error {
	s.stopOnce.Do(func() {
		s.stopping.Store(true)
		s.log.Info("stopping local stack", "timeout", timeout)
		s.stopErr = s.stopAll(timeout)
		if s.stopErr == nil {
			s.log.Info("local stack stopped")
		}
	})
	return s.stopErr
}

func (s *Stack) stopAll(timeout time.Duration) error {
	s.stopping.Store(true)
	errs := make([]error, len(s.procs))
	var wg sync.WaitGroup
	for i, p := range s.procs {
		wg.Go(func() { errs[i] = p.Stop(timeout) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func workerName(i int) string { return "worker-" + strconv.Itoa(i+1) }

// checkExecutable reports a missing or non-executable binary in words.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("binary %s not found: %w", path, err)
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// checkAddrFree fails when something already listens on addr.
func checkAddrFree(who, addr string) error {
	if err := portprobe.Free(addr); err != nil {
		return fmt.Errorf("%s address %s is not free (is another stack still running?): %w", who, addr, err)
	}
	return nil
}

// dialAddr turns a listen address into one to connect to: an empty or
// unspecified host becomes loopback.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
