package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scrapeplatform/platform/shared/broker"
)

// Defaults for BrokerOptions.
const (
	DefaultComposeFile        = "local/compose.yaml"
	DefaultComposeService     = "rabbitmq"
	DefaultBrokerReadyTimeout = 90 * time.Second
)

// brokerProbeTimeout bounds one AMQP liveness probe.
const brokerProbeTimeout = 3 * time.Second

// BrokerOptions configures EnsureBrokerWith.
type BrokerOptions struct {
	// URL is the broker's AMQP URL (amqp:// or amqps://).
	URL string
	// DataDir holds a private RabbitMQ node's database, logs, config and
	// Erlang cookie, e.g. ./.local/rabbitmq.
	DataDir string
	// ComposeFile and ComposeService are what Docker users get:
	// `docker compose -f ComposeFile up -d ComposeService`.
	ComposeFile    string
	ComposeService string
	// ReadyTimeout bounds the wait for a started broker to accept AMQP.
	ReadyTimeout time.Duration
	// Logger receives progress messages. Nil discards them.
	Logger *slog.Logger
	// PrometheusPort, when above 0, has a private node run the
	// rabbitmq_prometheus plugin on 127.0.0.1:PrometheusPort (a system node
	// may already hold the default port, 15692).
	PrometheusPort int
	// ManagementPort, when above 0, has a private node run the management plugin on
	// 127.0.0.1:ManagementPort (Broker.ManagementURL; the stack creates its broker users through it).
	ManagementPort int
	// Policies are set (rabbitmqctl set_policy, in the URL's vhost) on a
	// broker this package starts; a broker found running is left alone.
	Policies []Policy
}

// Policy is a RabbitMQ queue policy.
type Policy struct {
	Name, Pattern string
	// Priority decides which policy applies where several match a queue (only the highest does).
	Priority int
	// Definition is the policy's JSON definition, e.g.
	// {"max-length":1000,"overflow":"reject-publish"}.
	Definition string
}

// QueueBound is the task queue's bound (broker.Topology.BoundPolicy), what
// the queue-depth Lambda keeps on Amazon MQ.
func QueueBound(queue string, maxLength int) Policy {
	name, pattern, definition := broker.NewTopology(queue).BoundPolicy(int64(maxLength))
	def, _ := json.Marshal(definition) // a map of a number and a string: cannot fail
	return Policy{Name: name, Pattern: pattern, Priority: broker.BoundPolicyPriority, Definition: string(def)}
}

// setPolicyArgs are rabbitmqctl's arguments that set p in vhost.
func (p Policy) setPolicyArgs(vhost string) []string {
	return []string{"set_policy", "-p", vhost, "--apply-to", "queues", "--priority", strconv.Itoa(p.Priority), p.Name, p.Pattern, p.Definition}
}

// Where a Broker came from.
const (
	BrokerFound   = "found"   // it answered already and is left alone
	BrokerPrivate = "private" // a private RabbitMQ node was started
	BrokerDocker  = "docker"  // the compose file's service was started
)

// Broker is the broker RunBroker found or started.
type Broker struct {
	// Origin is BrokerFound, BrokerPrivate or BrokerDocker.
	Origin string
	// PrometheusAddr is where its rabbitmq_prometheus endpoint answers, or
	// would when the plugin is enabled: host:15692 for a broker found or run
	// by Docker, 127.0.0.1:PrometheusPort for a private node ("" without).
	PrometheusAddr string
	// ManagementURL is where its management API answers, or would: RABBITMQ_MANAGEMENT_URL or
	// http://host:15672 for a broker found or run by Docker, http://127.0.0.1:ManagementPort for a private
	// node ("" without).
	ManagementURL string
	// Stop stops a broker that was started; for one found it does nothing.
	// It is safe to call more than once.
	Stop func() error
}

// EnsureBroker makes sure an AMQP broker answers at url. If one answers, it
// returns a no-op stop. Otherwise, when the url's host is this machine:
//
//   - with rabbitmq-server installed, it starts a private node whose
//     database, logs, config and Erlang cookie live under dataDir (see
//     startRabbitMQNode), waits until it accepts AMQP, and stop shuts it down;
//   - else with a Docker engine that answers, it runs
//     `docker compose -f local/compose.yaml up -d rabbitmq`, and stop stops
//     that service;
//   - else it returns an error saying what to install, and how to point
//     RABBITMQ_URL at an existing broker.
//
// stop is safe to call more than once.
func EnsureBroker(ctx context.Context, url, dataDir string, log *slog.Logger) (stop func() error, err error) {
	return EnsureBrokerWith(ctx, BrokerOptions{URL: url, DataDir: dataDir, Logger: log})
}

// EnsureBrokerWith is EnsureBroker with every option.
func EnsureBrokerWith(ctx context.Context, o BrokerOptions) (stop func() error, err error) {
	b, err := RunBroker(ctx, o)
	if err != nil {
		return nil, err
	}
	return b.Stop, nil
}

// RunBroker is EnsureBrokerWith, telling where the broker came from and where
// its Prometheus endpoint is.
func RunBroker(ctx context.Context, o BrokerOptions) (Broker, error) {
	if o.ComposeFile == "" {
		o.ComposeFile = DefaultComposeFile
	}
	if o.ComposeService == "" {
		o.ComposeService = DefaultComposeService
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = DefaultBrokerReadyTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	target, err := parseBrokerURL(o.URL)
	if err != nil {
		return Broker{}, err
	}
	defaultMetrics := net.JoinHostPort(target.host, strconv.Itoa(DefaultRabbitMQPrometheusPort))

	err = probeAMQP(ctx, target.addr, target.tls, brokerProbeTimeout)
	switch {
	case err == nil:
		o.Logger.Info("using the AMQP broker that answers", "addr", target.addr)
		for _, p := range o.Policies {
			o.Logger.Info("a broker found running is left as it is: set the policy yourself if you want it", "policy", p.Name,
				"command", fmt.Sprintf("rabbitmqctl set_policy -p %s --apply-to queues --priority %d %s '%s' '%s'", target.vhost, p.Priority, p.Name, p.Pattern, p.Definition))
		}
		return Broker{Origin: BrokerFound, PrometheusAddr: defaultMetrics, ManagementURL: defaultManagementURL(target.host),
			Stop: func() error { return nil }}, nil
	case errors.Is(err, errNotAMQP):
		return Broker{}, fmt.Errorf("%s accepts connections but is not an AMQP 0-9-1 broker (%v): free the port or point RABBITMQ_URL at a RabbitMQ broker", target.addr, err)
	case ctx.Err() != nil:
		return Broker{}, ctx.Err()
	}
	if !isLoopbackHost(target.host) {
		return Broker{}, fmt.Errorf("no AMQP broker answers at %s (%v); it is not on this machine, so it cannot be started here: start it, or point RABBITMQ_URL at a broker that runs", target.addr, err)
	}
	if target.tls {
		return Broker{}, fmt.Errorf("no AMQP broker answers at %s (%v); a local broker is started for amqp:// URLs only: use amqp://guest:guest@%s/", target.addr, err, target.addr)
	}

	if server, err := exec.LookPath("rabbitmq-server"); err == nil {
		if o.DataDir == "" {
			return Broker{}, errors.New("starting a private RabbitMQ node needs a data folder")
		}
		stop, err := startRabbitMQNode(ctx, server, target, o)
		if err != nil {
			return Broker{}, err
		}
		b := Broker{Origin: BrokerPrivate, Stop: stop}
		if o.ManagementPort > 0 {
			b.ManagementURL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(o.ManagementPort))
		}
		if o.PrometheusPort > 0 {
			b.PrometheusAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(o.PrometheusPort))
		}
		return b, nil
	}
	docker, dockerErr := exec.LookPath("docker")
	if dockerErr == nil {
		if dockerErr = dockerEngineAnswers(ctx, docker); dockerErr == nil {
			stop, err := startComposeBroker(ctx, docker, target, o)
			if err != nil {
				return Broker{}, err
			}
			return Broker{Origin: BrokerDocker, PrometheusAddr: defaultMetrics, ManagementURL: defaultManagementURL(target.host), Stop: stop}, nil
		}
	}
	return Broker{}, installHint(target, o.ComposeFile, dockerErr)
}

// brokerTarget is the part of an AMQP URL EnsureBroker needs.
type brokerTarget struct {
	host, port, addr string
	tls              bool
	user, pass       string
	vhost            string
}

func parseBrokerURL(raw string) (brokerTarget, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return brokerTarget{}, fmt.Errorf("RABBITMQ_URL: %w", err)
	}
	t := brokerTarget{host: u.Hostname(), port: u.Port(), user: "guest", pass: "guest", vhost: "/"}
	switch u.Scheme {
	case "amqp":
		if t.port == "" {
			t.port = "5672"
		}
	case "amqps":
		t.tls = true
		if t.port == "" {
			t.port = "5671"
		}
	default:
		return brokerTarget{}, fmt.Errorf("RABBITMQ_URL %q: scheme must be amqp or amqps", redactURL(u))
	}
	if t.host == "" {
		t.host = "localhost"
	}
	if u.User != nil {
		t.user = u.User.Username()
		t.pass, _ = u.User.Password()
	}
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		t.vhost = p // url.Parse already unescaped %2f
	}
	t.addr = net.JoinHostPort(t.host, t.port)
	return t, nil
}

// redactURL hides the password for messages.
func redactURL(u *url.URL) string { return u.Redacted() }

// isLoopbackHost reports whether host names this machine's loopback
// interface, the only place a broker may be started for the user.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// dockerEngineAnswers runs `docker info`, which fails when the client is
// installed but no engine runs.
func dockerEngineAnswers(ctx context.Context, docker string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, docker, "info").CombinedOutput()
	if err != nil {
		return fmt.Errorf("docker is installed but its engine does not answer (docker info: %v: %s)", err, lastLine(out))
	}
	return nil
}

// startComposeBroker runs the compose file's broker service and waits for it.
func startComposeBroker(ctx context.Context, docker string, t brokerTarget, o BrokerOptions) (func() error, error) {
	if _, err := os.Stat(o.ComposeFile); err != nil {
		return nil, fmt.Errorf("no AMQP broker answers at %s, and the compose file to start one is missing: %w", t.addr, err)
	}
	compose := func(ctx context.Context, args ...string) error {
		args = append([]string{"compose", "-f", o.ComposeFile}, args...)
		o.Logger.Info("running docker", "args", strings.Join(args, " "))
		out, err := exec.CommandContext(ctx, docker, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	stop := sync.OnceValue(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return compose(ctx, "stop", o.ComposeService)
	})
	if err := compose(ctx, "up", "-d", o.ComposeService); err != nil {
		_ = stop()
		return nil, err
	}
	if err := waitAMQP(ctx, t, o.ReadyTimeout, nil); err != nil {
		_ = stop()
		return nil, fmt.Errorf("docker compose started %s, but: %w (see: docker compose -f %s logs %s)", o.ComposeService, err, o.ComposeFile, o.ComposeService)
	}
	for _, p := range o.Policies {
		if err := compose(ctx, append([]string{"exec", "-T", o.ComposeService, "rabbitmqctl"}, p.setPolicyArgs(t.vhost)...)...); err != nil {
			_ = stop()
			return nil, fmt.Errorf("policy %s: %w", p.Name, err)
		}
	}
	o.Logger.Info("RabbitMQ runs in Docker", "addr", t.addr, "compose_file", o.ComposeFile)
	return stop, nil
}

// waitAMQP polls until a broker answers at t, p (when not nil) exits,
// timeout passes or ctx ends.
func waitAMQP(ctx context.Context, t brokerTarget, timeout time.Duration, p *Process) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var done <-chan struct{}
	if p != nil {
		done = p.Done()
	}
	for {
		err := probeAMQP(ctx, t.addr, t.tls, brokerProbeTimeout)
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%s before the broker accepted AMQP", describeExit(p))
		case <-deadline.C:
			return fmt.Errorf("the broker did not accept AMQP at %s within %s: %w", t.addr, timeout, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// installHint is the error for a machine with no way to run a broker.
func installHint(t brokerTarget, composeFile string, dockerErr error) error {
	docker := "Docker is not installed"
	if dockerErr != nil && !errors.Is(dockerErr, exec.ErrNotFound) {
		docker = dockerErr.Error()
	}
	return fmt.Errorf(`no AMQP broker answers at %s, and none can be started here: rabbitmq-server is not installed and %s.
Do one of these:
  - install RabbitMQ (a private node is then started under .local/rabbitmq):
      Debian/Ubuntu: sudo apt-get install rabbitmq-server
      macOS:         brew install rabbitmq
  - install and start Docker (then `+"`docker compose -f %s up -d rabbitmq`"+` is used)
  - or point RABBITMQ_URL at a broker that runs, e.g.
      RABBITMQ_URL=amqp://user:password@broker-host:5672/ make run`, t.addr, docker, composeFile)
}

// lastLine returns the last non-empty line of out.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
