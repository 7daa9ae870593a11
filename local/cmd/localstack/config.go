package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/scrapeplatform/platform/local/stack"
)

// Defaults of the settings that come from the environment.
const (
	defaultRabbitMQURL   = "amqp://guest:guest@127.0.0.1:5672/"
	defaultRepositoryDir = "scripts"
	defaultS3Addr        = "127.0.0.1:7070"
	defaultS3Bucket      = "scraping-scripts"
	defaultJobsBucket    = "scraping-jobs"
	// The local S3 server listens on loopback only; its keys are not secrets.
	localS3AccessKey       = "scraping-local"
	localS3SecretKey       = "scraping-local-secret-key"
	defaultPrometheusAddr  = "127.0.0.1:9090"
	defaultPrometheusRules = "local/prometheus/alerts.yml"
	// defaultQueueMaxLength bounds the task queue of a broker started here, as the stages' settings do in AWS.
	defaultQueueMaxLength = 1000
)

// config is everything run needs, from flags and environment.
type config struct {
	binDir          string
	gatewayAddr     string
	workers         int
	metricsBasePort int
	dataDir         string // absolute
	composeFile     string
	readyTimeout    time.Duration
	stopTimeout     time.Duration

	prometheusAddr     string // "" when -prometheus-addr is off
	prometheusRules    string // absolute
	prometheusInterval time.Duration
	rabbitMQMetrics    string // RABBITMQ_PROMETHEUS_ADDR; "" means: where the broker's plugin answers

	rabbitMQURL    string
	taskQueue      string // RABBITMQ_TASK_QUEUE
	queueMaxLength int    // TASK_QUEUE_MAX_LENGTH: the bound set on a broker started here; 0 sets none
	jwtSecret      string // "" means: read or create dataDir/jwt-secret
	jwksURL        string // JWT_JWKS_URL: the gateway checks an identity provider's tokens; no secret then
	repositoryType string // "" until resolved: s3 with a local S3 server when versitygw is installed, else local
	repositoryURL  string // absolute for the local repository
	scriptsDir     string // absolute: the folder published to a local S3 server
	localS3        bool   // run versitygw and publish scriptsDir to it
	localJobs      bool   // run versitygw for the job store (no JOB_STORE_BUCKET and no S3 of the user's)
	s3Addr         string
	versitygw      string // VERSITYGW
	workDir        string // WORKER_WORK_DIR for the workers: the user's, else one of this stack's own
	egressAllow    string // EGRESS_ALLOW, for the banner only: the workers read it from the environment

	// Ports the user chose (a flag or variable): when one is taken, run
	// stops and says so; a default one that is taken is replaced by a free
	// one (settlePorts), so a second stack on this machine just runs.
	s3AddrChosen, prometheusAddrChosen, metricsBaseChosen bool
}

// loadConfig parses the flags and reads the environment through getenv.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("localstack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: localstack [flags]  (what `make run` runs; see local/README.md)")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.binDir, "bin", "bin", "folder holding the gateway-local and worker binaries")
	fs.StringVar(&c.gatewayAddr, "gateway-addr", or(getenv("GATEWAY_ADDR"), stack.DefaultGatewayAddr), "gateway listen address (default from GATEWAY_ADDR)")
	fs.IntVar(&c.workers, "workers", stack.DefaultWorkers, "number of workers")
	fs.IntVar(&c.metricsBasePort, "worker-metrics-base-port", stack.DefaultWorkerMetricsBasePort, "worker i (1-based) serves /healthz and /metrics on 127.0.0.1:(this+i)")
	fs.StringVar(&c.dataDir, "data", ".local", "folder for local state: the JWT secret, a private RabbitMQ node")
	fs.StringVar(&c.composeFile, "compose-file", stack.DefaultComposeFile, "compose file used to start RabbitMQ with Docker when rabbitmq-server is not installed")
	fs.DurationVar(&c.readyTimeout, "ready-timeout", stack.DefaultReadyTimeout, "how long the gateway and workers get to become healthy")
	fs.DurationVar(&c.stopTimeout, "stop-timeout", 40*time.Second, "how long the gateway and workers get to stop (workers drain) before they are killed")
	fs.StringVar(&c.prometheusAddr, "prometheus-addr", or(getenv("PROMETHEUS_ADDR"), defaultPrometheusAddr), "listen address of the Prometheus started when `prometheus` is installed; \"off\" starts none")
	fs.StringVar(&c.prometheusRules, "prometheus-rules", defaultPrometheusRules, "alert rules Prometheus loads")
	fs.DurationVar(&c.prometheusInterval, "prometheus-interval", 5*time.Second, "Prometheus scrape and rule evaluation interval")
	fs.StringVar(&c.s3Addr, "s3-addr", defaultS3Addr, "listen address of the local S3-compatible server (versitygw), when the workers read scripts from one")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "s3-addr":
			c.s3AddrChosen = true
		case "prometheus-addr":
			c.prometheusAddrChosen = true
		case "worker-metrics-base-port":
			c.metricsBaseChosen = true
		}
	})
	if getenv("PROMETHEUS_ADDR") != "" {
		c.prometheusAddrChosen = true
	}
	if c.workers < 1 {
		return config{}, fmt.Errorf("-workers must be at least 1, got %d", c.workers)
	}
	var err error
	if c.dataDir, err = filepath.Abs(c.dataDir); err != nil {
		return config{}, err
	}
	if c.prometheusAddr == "off" {
		c.prometheusAddr = ""
	}
	if c.prometheusRules, err = filepath.Abs(c.prometheusRules); err != nil {
		return config{}, err
	}
	if c.prometheusInterval < time.Second {
		return config{}, fmt.Errorf("-prometheus-interval must be at least 1s, got %s", c.prometheusInterval)
	}
	c.rabbitMQMetrics = getenv("RABBITMQ_PROMETHEUS_ADDR")

	c.rabbitMQURL = or(getenv("RABBITMQ_URL"), defaultRabbitMQURL)
	c.taskQueue = or(getenv("RABBITMQ_TASK_QUEUE"), "scraping_tasks")
	c.queueMaxLength = defaultQueueMaxLength
	if v := getenv("TASK_QUEUE_MAX_LENGTH"); v != "" {
		if c.queueMaxLength, err = strconv.Atoi(v); err != nil || c.queueMaxLength < 0 {
			return config{}, fmt.Errorf("TASK_QUEUE_MAX_LENGTH must be a whole number of messages (0: no bound), got %q", v)
		}
	}
	c.jwtSecret = getenv("JWT_SECRET")
	c.egressAllow = getenv("EGRESS_ALLOW")
	c.jwksURL = getenv("JWT_JWKS_URL")
	c.repositoryType = getenv("SCRIPT_REPOSITORY_TYPE")
	c.repositoryURL = getenv("SCRIPT_REPOSITORY_URL")
	c.versitygw = getenv("VERSITYGW")
	if c.workDir = getenv("WORKER_WORK_DIR"); c.workDir == "" {
		c.workDir = stackWorkDir(or(getenv("TMPDIR"), os.TempDir()), c.gatewayAddr)
	}
	if c.repositoryType == "" || c.repositoryType == "local" {
		// The workers may run from another folder one day: pass a path that
		// does not depend on it. (It is also what a local S3 server gets.)
		if c.scriptsDir, err = filepath.Abs(or(c.repositoryURL, defaultRepositoryDir)); err != nil {
			return config{}, err
		}
	}
	// The job store lives on the local S3 server too, whatever the script repository, unless the user
	// names a job store or an S3 server of their own (their S3_* variables would point it elsewhere).
	c.localJobs = getenv("JOB_STORE_BUCKET") == "" && getenv("S3_ENDPOINT_URL") == "" && getenv("S3_BUCKET_NAME") == ""
	// s3 without a bucket or endpoint of the user's: the S3 server is ours.
	if c.repositoryType == "s3" && getenv("S3_BUCKET_NAME") == "" && getenv("S3_ENDPOINT_URL") == "" {
		c.localS3 = true
		if c.scriptsDir, err = filepath.Abs(defaultRepositoryDir); err != nil {
			return config{}, err
		}
	}
	return c, nil
}

// stackWorkDir is the workers' scratch folder of the stack whose gateway
// listens on gatewayAddr: one per gateway port, which no two running stacks
// share, so two stacks never share (and lock each other out of) a script
// cache, which the worker's own default, named by WORKER_ID alone, would.
func stackWorkDir(tmp, gatewayAddr string) string {
	_, port, err := net.SplitHostPort(gatewayAddr)
	if err != nil || port == "" {
		port = "gateway"
	}
	return filepath.Join(tmp, "scrape-local-"+port)
}

// useLocalFolder settles on the local folder repository.
func (c *config) useLocalFolder() {
	c.repositoryType, c.repositoryURL, c.localS3 = "local", c.scriptsDir, false
}

// childEnv is the children's environment: all of this process's (so every
// setting the user made reaches them), then the values resolved here, which
// win (extra last: a local S3 server's variables).
func (c config) childEnv(environ []string, extra ...string) []string {
	env := append([]string(nil), environ...)
	env = append(env,
		"RABBITMQ_URL="+c.rabbitMQURL,
		"JWT_SECRET="+c.jwtSecret,
		"SCRIPT_REPOSITORY_TYPE="+c.repositoryType,
	)
	if c.repositoryURL != "" {
		env = append(env, "SCRIPT_REPOSITORY_URL="+c.repositoryURL)
	}
	if c.workDir != "" {
		env = append(env, "WORKER_WORK_DIR="+c.workDir)
	}
	return append(env, extra...)
}

func or(v, fallback string) string {
	if v != "" {
		return v
	}
	return fallback
}
