package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/scrapeplatform/platform/local/stack"
	"github.com/scrapeplatform/platform/shared/broker"
)

// run brings the local platform up and keeps it up until ctx ends (main
// cancels it on SIGINT/SIGTERM) or one of its processes dies.
//
// Start-up, in order:
//  0. check that the addresses it will listen on are free (settlePorts):
//     the gateway's and those the user chose must be; default ones that are
//     taken (a second stack on this machine) move to free ports;
//  1. make sure a broker answers at RABBITMQ_URL, starting one if needed
//     (stack.EnsureBroker, private node under <data>/rabbitmq), and that it
//     accepts RABBITMQ_URL's login (broker.CheckLogin: a wrong password
//     stops the start at once with the broker's reason);
//     Then give the gateway and the workers least-privilege broker users
//     of their own (brokerUsers; RABBITMQ_URL's user stays with localstack);
//  2. resolve the JWT secret: JWT_SECRET, else <data>/jwt-secret, created
//     on first run;
//  3. settle the scripts: a local S3 server (versitygw) with scripts/
//     published to it by scrapectl, when versitygw is installed and the
//     repository is not set otherwise; else the folder itself;
//  4. start the gateway and the workers and wait until all are healthy;
//  5. when `prometheus` is installed, start it on them (config written to
//     <data>/prometheus with the processes' real ports, rules from
//     local/prometheus/alerts.yml);
//  6. print how to call the gateway.
//
// Shutdown, in order (on a signal, or when a process dies):
//  1. SIGTERM to every process group at once: the gateway stops taking
//     requests and finishes those in flight while the workers drain;
//  2. after -stop-timeout (40 s, above the workers' 30 s drain), SIGKILL
//     to the groups still there; a second Ctrl-C does this at once;
//  3. stop Prometheus, the S3 server, then the broker if step 1 of start-up
//     started it.
//
// A signal ends with a nil error (exit 0); a process that died, or a start
// that failed, with an error (exit 1).
//
// Settings come from getenv; the children's environment is this process's
// whole environment plus the resolved settings (see config.childEnv).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	// Text, not JSON: this is a console for a person, and its lines sit
	// between the children's (which are JSON).
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("component", "localstack")

	if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	if err := settlePorts(&cfg, log); err != nil {
		return err
	}

	var policies []stack.Policy
	if cfg.queueMaxLength > 0 {
		policies = append(policies, stack.QueueBound(cfg.taskQueue, cfg.queueMaxLength))
	}
	brk, err := stack.RunBroker(ctx, stack.BrokerOptions{
		URL:            cfg.rabbitMQURL,
		DataDir:        filepath.Join(cfg.dataDir, "rabbitmq"),
		ComposeFile:    cfg.composeFile,
		Logger:         log,
		PrometheusPort: rabbitMQPrometheusPort(),
		ManagementPort: freeManagementPort(),
		Policies:       policies,
	})
	if err != nil {
		if ctx.Err() != nil {
			log.Info("interrupted while starting the broker")
			return nil
		}
		return fmt.Errorf("broker: %w", err)
	}
	defer func() {
		if err := brk.Stop(); err != nil {
			log.Warn("stopping the broker", "err", err)
		}
	}()
	if cfg.rabbitMQMetrics == "" {
		cfg.rabbitMQMetrics = brk.PrometheusAddr
	}
	// The login, not only the port: a wrong password or virtual host is said at once, with the broker's
	// own reason, rather than as workers that never become healthy.
	if err := broker.CheckLogin(ctx, cfg.rabbitMQURL); err != nil {
		if ctx.Err() != nil {
			log.Info("interrupted while checking the broker login")
			return nil
		}
		return fmt.Errorf("broker: %w", err)
	}
	log.Info("the broker accepted the login", "url", redact(cfg.rabbitMQURL))
	gatewayBrokerEnv, workerBrokerEnv, removeBrokerUsers := brokerUsers(ctx, cfg, brk, log)
	defer removeBrokerUsers() // runs before the broker's stop (deferred earlier)

	if cfg.jwksURL != "" {
		log.Info("JWT: the gateway checks the identity provider's tokens", "jwks_url", cfg.jwksURL)
	} else if cfg.jwtSecret == "" {
		path := filepath.Join(cfg.dataDir, "jwt-secret")
		secret, created, err := loadOrCreateSecret(path)
		if err != nil {
			return fmt.Errorf("JWT secret: %w", err)
		}
		cfg.jwtSecret = secret
		log.Info("JWT secret", "file", path, "created", created)
	} else {
		log.Info("JWT secret from JWT_SECRET")
	}
	// Webhooks (job callbacks) are signed with WEBHOOK_SECRET, else <data>/webhook-secret, created once: a
	// receiver of make run's callbacks verifies with that file's secret.
	webhookEnv := []string(nil)
	if os.Getenv("WEBHOOK_SECRET") == "" {
		path := filepath.Join(cfg.dataDir, "webhook-secret")
		secret, created, err := loadOrCreateWebhookSecret(path)
		if err != nil {
			return fmt.Errorf("webhook secret: %w", err)
		}
		webhookEnv = append(webhookEnv, "WEBHOOK_SECRET="+secret)
		log.Info("webhook signing secret", "file", path, "created", created)
	}
	s3, err := startScriptServer(ctx, &cfg, stdout, log)
	if err != nil {
		if ctx.Err() != nil {
			log.Info("interrupted while starting the S3 server")
			return nil
		}
		return err
	}
	var s3Env []string
	if s3 != nil {
		if cfg.repositoryType == "s3" {
			s3Env = s3.Env()
		}
		if cfg.localJobs {
			s3Env = append(s3Env, s3.JobEnv(defaultJobsBucket)...)
		}
		defer func() {
			if err := s3.Stop(10 * time.Second); err != nil {
				log.Warn("stopping the S3 server", "err", err)
			}
		}()
	}
	if cfg.repositoryType == "local" {
		if fi, err := os.Stat(cfg.repositoryURL); err != nil || !fi.IsDir() {
			log.Warn("the script folder does not exist; scrapes will fail until it does", "SCRIPT_REPOSITORY_URL", cfg.repositoryURL)
		}
	}

	scriptsDir := ""
	if cfg.repositoryType == "local" {
		scriptsDir = cfg.repositoryURL
	}
	runAsEnv, note, warning := scriptUser(ctx, getenv, euid(), scriptsDir)
	switch {
	case warning != "":
		log.Warn(warning)
	case note != "":
		log.Info(note)
	}
	s3Env = append(s3Env, runAsEnv...)

	s, err := stack.Start(ctx, stack.Options{
		BinDir:                cfg.binDir,
		GatewayAddr:           cfg.gatewayAddr,
		Workers:               cfg.workers,
		WorkerMetricsBasePort: cfg.metricsBasePort,
		Env:                   cfg.childEnv(os.Environ(), s3Env...),
		GatewayEnv:            gatewayBrokerEnv,
		WorkerEnv:             append(workerBrokerEnv, webhookEnv...),
		Output:                stdout,
		ReadyTimeout:          cfg.readyTimeout,
		Logger:                log,
	})
	if err != nil {
		if ctx.Err() != nil {
			log.Info("interrupted while starting")
			return nil
		}
		return err
	}
	prom := startPrometheus(ctx, s, cfg, stdout, log)
	if prom != nil {
		defer func() {
			if err := prom.Stop(10 * time.Second); err != nil {
				log.Warn("stopping prometheus", "err", err)
			}
		}()
	}
	printUsage(stdout, s, prom, s3, cfg)

	var failure error
	select {
	case <-ctx.Done():
		log.Info("interrupted: stopping (press Ctrl-C again to kill everything now)", "timeout", cfg.stopTimeout)
	case p := <-s.Exited():
		// Loud and readable: a plain block, not an escaped log attribute.
		fmt.Fprintf(stderr, "\n!!! %s DIED UNEXPECTEDLY: stopping the local stack !!!\n%s\n\n", p.Name(), p.ExitReport())
		log.Error("a process died; stopping the local stack", "process", p.Name(), "err", p.ExitErr())
		failure = fmt.Errorf("%s died unexpectedly; the stack was stopped", p.Name())
	}

	force := make(chan os.Signal, 1)
	signal.Notify(force, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(force)
	stopped := make(chan struct{})
	go func() {
		select {
		case <-force:
			log.Warn("second interrupt: killing every process now")
			for _, p := range s.Processes() {
				_ = p.Signal(syscall.SIGKILL)
			}
		case <-stopped:
		}
	}()
	if err := s.Stop(cfg.stopTimeout); err != nil {
		log.Warn("the stack did not stop cleanly", "err", err)
	}
	close(stopped)
	return failure
}

// startScriptServer settles where the workers read scripts from and where jobs are kept. With
// SCRIPT_REPOSITORY_TYPE=s3 and no bucket or endpoint of the user's, or with no SCRIPT_REPOSITORY_TYPE at
// all while versitygw is installed, it starts a local S3-compatible server (versitygw, objects under
// <data>/s3) and publishes the script folders to it with scrapectl — the deployed topology. Without
// versitygw (and no explicit s3) the workers read the folder itself. The same server keeps the job store
// (bucket scraping-jobs), also for SCRIPT_REPOSITORY_TYPE=local, unless the user names their own.
func startScriptServer(ctx context.Context, cfg *config, out io.Writer, log *slog.Logger) (*stack.S3Server, error) {
	explicit := cfg.localS3
	scripts := explicit || cfg.repositoryType == ""
	if !scripts && !cfg.localJobs {
		return nil, nil
	}
	noJobs := func(reason string, err error) {
		if cfg.localJobs {
			log.Warn("no job store: async scrapes (Prefer: respond-async, Idempotency-Key, callback_url) answer 503: "+reason, "reason", err)
			cfg.localJobs = false
		}
	}
	fallback := func(reason string, err error) (*stack.S3Server, error) {
		if explicit {
			return nil, fmt.Errorf("local S3 server: %w", err)
		}
		if scripts {
			log.Info("the workers read scripts from the folder: "+reason, "folder", cfg.scriptsDir, "reason", err)
			cfg.useLocalFolder()
		}
		noJobs(reason, err)
		return nil, nil
	}
	root, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	bin, err := stack.LookVersityGW(cfg.versitygw, root)
	if err != nil {
		return fallback("no S3 server (make versitygw installs one)", err)
	}
	scrapectl := filepath.Join(cfg.binDir, "scrapectl")
	if _, err := os.Stat(scrapectl); err != nil && scripts {
		if explicit || !cfg.localJobs {
			return fallback("scrapectl, which publishes them, is not built (make build)", err)
		}
		log.Info("the workers read scripts from the folder: scrapectl, which publishes them, is not built (make build)", "folder", cfg.scriptsDir)
		cfg.useLocalFolder()
		scripts = false
	}
	var buckets []string
	if cfg.localJobs {
		buckets = []string{defaultJobsBucket}
	}
	srv, err := stack.StartS3(ctx, stack.S3Options{
		Binary: bin, Addr: cfg.s3Addr, Dir: filepath.Join(cfg.dataDir, "s3"), Bucket: defaultS3Bucket, Buckets: buckets,
		AccessKey: localS3AccessKey, SecretKey: localS3SecretKey, Region: "us-east-1", Output: out,
	})
	if err != nil {
		return fallback("the S3 server did not start", err)
	}
	if cfg.localJobs {
		log.Info("jobs are kept on the local S3 server", "endpoint", srv.Endpoint(), "bucket", defaultJobsBucket)
	}
	if !scripts {
		return srv, nil
	}
	names, err := srv.PublishScripts(ctx, scrapectl, cfg.scriptsDir)
	if err != nil {
		_ = srv.Stop(10 * time.Second)
		return nil, fmt.Errorf("publish scripts to the local S3 server: %w", err)
	}
	cfg.repositoryType, cfg.repositoryURL = "s3", ""
	log.Info("scripts published to the local S3 server", "endpoint", srv.Endpoint(), "bucket", defaultS3Bucket, "scripts", strings.Join(names, ","))
	return srv, nil
}

// rabbitMQPrometheusPort is the port of a private node's rabbitmq_prometheus
// plugin: the usual 15692 when free (a system node may hold it), else any.
func rabbitMQPrometheusPort() int {
	if ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(stack.DefaultRabbitMQPrometheusPort))); err == nil {
		ln.Close()
		return stack.DefaultRabbitMQPrometheusPort
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startPrometheus starts Prometheus on the stack's processes and the
// broker's rabbitmq_prometheus endpoint when it is installed and wanted. It
// returns nil, after saying why, when it does not run: the stack works
// without it.
func startPrometheus(ctx context.Context, s *stack.Stack, cfg config, out io.Writer, log *slog.Logger) *stack.Prometheus {
	if cfg.prometheusAddr == "" {
		return nil
	}
	bin, err := stack.LookPrometheus()
	if err != nil {
		log.Info("not starting Prometheus (the dashboards' queries and alerts need it)", "reason", err)
		return nil
	}
	if _, err := os.Stat(cfg.prometheusRules); err != nil {
		log.Warn("alert rules not found; Prometheus runs without them", "err", err)
		cfg.prometheusRules = ""
	}
	pc := stack.PrometheusConfig{
		ScrapeInterval: cfg.prometheusInterval,
		Gateways:       []string{hostPort(s.GatewayURL())},
	}
	for _, u := range s.WorkerMetricsURLs() {
		pc.Workers = append(pc.Workers, hostPort(u))
	}
	if cfg.rabbitMQMetrics != "" {
		pc.RabbitMQ = []string{cfg.rabbitMQMetrics}
	}
	if cfg.prometheusRules != "" {
		pc.RuleFiles = []string{cfg.prometheusRules}
	}
	prom, err := stack.StartPrometheus(ctx, stack.PrometheusOptions{
		Binary: bin, Addr: cfg.prometheusAddr, Dir: filepath.Join(cfg.dataDir, "prometheus"),
		Config: pc, Output: out,
	})
	if err != nil {
		log.Warn("Prometheus did not start; the stack runs without it", "err", err)
		return nil
	}
	log.Info("prometheus ready", "url", prom.URL(), "config", prom.ConfigFile())
	return prom
}

// hostPort returns the host:port of a base URL.
func hostPort(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Host
	}
	return raw
}

// printUsage tells the person at the terminal how to call the stack.
func printUsage(w io.Writer, s *stack.Stack, prom *stack.Prometheus, s3 *stack.S3Server, cfg config) {
	var metrics []string
	for _, u := range s.WorkerMetricsURLs() {
		metrics = append(metrics, u+"/metrics")
	}
	promLine := "not running (install it: apt-get install prometheus / brew install prometheus)"
	if prom != nil {
		promLine = prom.URL() + "   (alerts: " + prom.URL() + "/alerts; RabbitMQ's metrics from " + or(cfg.rabbitMQMetrics, "nowhere") + ")"
	}
	scripts := cfg.repositoryType + " " + cfg.repositoryURL
	republish := ""
	jobs := "none (install versitygw: make versitygw; or set JOB_STORE_BUCKET): async scrapes answer 503"
	if s3 != nil && cfg.localJobs {
		jobs = "s3://" + defaultJobsBucket + " on " + s3.Endpoint() + " (versitygw)"
	} else if v := os.Getenv("JOB_STORE_BUCKET"); v != "" {
		jobs = "s3://" + v + " (JOB_STORE_BUCKET)"
	}
	if s3 != nil && cfg.repositoryType == "s3" {
		scripts = "s3://" + defaultS3Bucket + "/scripts/ on " + s3.Endpoint() + " (versitygw), published from " + cfg.scriptsDir
		republish = "After editing a script, publish it again (workers pick it up within SCRIPT_CACHE_TTL, 30 s):\n  " +
			strings.Join(s3.Env()[1:], " ") + " " + filepath.Join(cfg.binDir, "scrapectl") + " scripts push scripts/NAME\n" +
			"(or run with SCRIPT_REPOSITORY_TYPE=local to read the folder directly)\n\n"
	}
	fmt.Fprintf(w, `
Local stack ready.
  gateway     %[1]s   (GET /health, GET /status, POST /scrape, GET|DELETE /jobs/ID, GET /metrics)
  workers     %[2]s
  broker      %[3]s
  scripts     %[4]s
  jobs        %[9]s
  prometheus  %[6]s
  state       %[5]s

%[8]s
%[7]sCtrl-C stops everything.

`, s.GatewayURL(), strings.Join(metrics, " "), redact(cfg.rabbitMQURL), scripts, cfg.dataDir, promLine, republish,
		callText(s.GatewayURL(), cfg.egressAllow), jobs)
}

// demoAddr is where `make demo` serves the bundled demo page (local/demo/).
const demoAddr = "127.0.0.1:8765"

// callText is the banner's "how to call it" part: first the bundled demo page, which needs no internet but
// needs EGRESS_ALLOW (the workers' egress proxy refuses loopback addresses otherwise), then a page on the
// internet. The README's quick start shows the same commands (TestBannerAndREADMEAgree).
func callText(gatewayURL, egressAllow string) string {
	allowed := "this one runs with EGRESS_ALLOW=" + egressAllow
	if egressAllow == "" {
		allowed = "this one runs without: restart it with EGRESS_ALLOW=" + demoAddr + " make run"
	}
	return fmt.Sprintf(`Call it on the bundled demo page (no internet needed): serve the page in another terminal with
  make demo
(the workers fetch it only when the stack runs with EGRESS_ALLOW=%[2]s; %[3]s), then
  TOKEN=$(make -s token)
  curl -s -H "Authorization: Bearer $TOKEN" -d '{"script_name":"example_scraper","parameters":{"url":"http://%[2]s/"}}' %[1]s/scrape

Or on a page on the internet (needs internet access):
  curl -s -H "Authorization: Bearer $TOKEN" -d '{"script_name":"example_scraper","parameters":{"url":"https://example.com"}}' %[1]s/scrape
`, gatewayURL, demoAddr, allowed)
}

// redact hides the password of a URL.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
