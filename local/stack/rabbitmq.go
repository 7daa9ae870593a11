package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// nodeStopTimeout bounds `rabbitmqctl stop`.
	nodeStopTimeout = 30 * time.Second
	// nodeKillGrace is how long the node gets after SIGTERM to its group
	// once rabbitmqctl has failed or returned.
	nodeKillGrace = 15 * time.Second
	// epmdPort is Erlang's port mapper, unless ERL_EPMD_PORT says otherwise.
	epmdPort = "4369"
)

// NodeName returns the name of the private RabbitMQ node EnsureBroker starts
// for an AMQP port, e.g. scrape-local-5672@localhost. One name per port lets
// stacks on different ports run side by side and share a data folder.
func NodeName(amqpPort string) string { return "scrape-local-" + amqpPort + "@localhost" }

// plainCredential matches what can go into rabbitmq.conf unquoted.
var plainCredential = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)

// startRabbitMQNode starts a private RabbitMQ node for t, isolated from any
// system node on the same machine:
//
//   - its node name is NodeName(port), its AMQP listener t's loopback address
//     and port, its distribution port a free one (the default, AMQP port +
//     20000, may be taken by the system node);
//   - RABBITMQ_CONF_ENV_FILE, RABBITMQ_CONFIG_FILE, RABBITMQ_ENABLED_PLUGINS_FILE,
//     RABBITMQ_MNESIA_BASE, RABBITMQ_LOG_BASE and RABBITMQ_PID_FILE all point
//     under o.DataDir, so nothing of /etc/rabbitmq applies;
//   - HOME is o.DataDir/home, so the node and rabbitmqctl share their own
//     Erlang cookie;
//   - the server script is run directly, not through Debian's
//     /usr/sbin wrapper, which would switch to the rabbitmq user and its home;
//   - its console output goes to o.DataDir/log/console.log;
//   - with o.PrometheusPort, it runs rabbitmq_prometheus on that loopback
//     port, and no plugin otherwise.
//
// The user and password of the URL become the node's default user on its
// first boot (an existing database keeps the users it has).
func startRabbitMQNode(ctx context.Context, serverPath string, t brokerTarget, o BrokerOptions) (func() error, error) {
	server, ctl, err := rabbitmqScripts(serverPath)
	if err != nil {
		return nil, err
	}
	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(dataDir, " \t\n'\"") {
		// The RabbitMQ scripts word-split these paths.
		return nil, fmt.Errorf("the RabbitMQ data folder %q must not contain spaces or quotes", dataDir)
	}
	for _, c := range []string{t.user, t.pass, t.vhost} {
		if c != "/" && !plainCredential.MatchString(c) {
			return nil, fmt.Errorf("RABBITMQ_URL: a private node is set up only for a user, password and vhost made of letters, digits and ._~- (or use guest:guest)")
		}
	}
	node := NodeName(t.port)
	files, err := writeNodeFiles(dataDir, t, o.PrometheusPort, o.ManagementPort)
	if err != nil {
		return nil, fmt.Errorf("prepare RabbitMQ data folder: %w", err)
	}
	distPort, err := freeLoopbackPort()
	if err != nil {
		return nil, fmt.Errorf("find a distribution port for %s: %w", node, err)
	}
	ip := "127.0.0.1"
	if addr := net.ParseIP(t.host); addr != nil {
		ip = addr.String()
	}
	env := nodeEnv(os.Environ(), filepath.Join(dataDir, "home"))
	env = append(env,
		"RABBITMQ_NODENAME="+node,
		"RABBITMQ_NODE_IP_ADDRESS="+ip,
		"RABBITMQ_NODE_PORT="+t.port,
		"RABBITMQ_DIST_PORT="+strconv.Itoa(distPort),
		"RABBITMQ_CONF_ENV_FILE="+files.envConf,
		"RABBITMQ_CONFIG_FILE="+files.conf,
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dataDir, "advanced.config"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+files.plugins,
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dataDir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dataDir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(dataDir, node+".pid"),
		// Erlang distribution on loopback only.
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
	)

	// Without a port mapper, the node starts one that outlives it; remember
	// that so stop can end it again.
	epmdWasRunning := epmdAnswers()

	console, err := os.OpenFile(filepath.Join(dataDir, "log", "console.log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	log := o.Logger.With("node", node)
	log.Info("starting a private RabbitMQ node", "addr", t.addr, "dist_port", distPort, "data_dir", dataDir)
	p, err := StartProcess(context.WithoutCancel(ctx), "rabbitmq", server, nil, env, console)
	if err != nil {
		console.Close()
		return nil, err
	}

	stop := sync.OnceValue(func() error {
		defer console.Close()
		var errs []error
		if ctl != "" {
			select {
			case <-p.Done():
			default:
				if err := runCtl(ctl, env, node, "stop"); err != nil {
					log.Warn("rabbitmqctl stop failed; signalling the node", "err", err)
				}
			}
		}
		if err := p.Stop(nodeKillGrace); err != nil {
			errs = append(errs, err)
		}
		if !epmdWasRunning {
			stopEpmd(env)
		}
		if len(errs) == 0 {
			log.Info("private RabbitMQ node stopped")
		}
		return errors.Join(errs...)
	})

	if err := waitAMQP(ctx, t, o.ReadyTimeout, p); err != nil {
		_ = stop()
		return nil, fmt.Errorf("private RabbitMQ node %s: %w\n  (logs: %s)", node, err, filepath.Join(dataDir, "log"))
	}
	log.Info("private RabbitMQ node accepts AMQP", "addr", t.addr, "pid", p.Pid())
	for _, pol := range o.Policies {
		if ctl == "" {
			_ = stop()
			return nil, fmt.Errorf("policy %s: rabbitmqctl was not found next to %s", pol.Name, serverPath)
		}
		if err := runCtl(ctl, env, node, pol.setPolicyArgs(t.vhost)...); err != nil {
			_ = stop()
			return nil, fmt.Errorf("private RabbitMQ node %s: policy %s: %w", node, pol.Name, err)
		}
		log.Info("policy set", "policy", pol.Name, "pattern", pol.Pattern, "definition", pol.Definition)
	}
	return stop, nil
}

// rabbitmqScripts finds the real rabbitmq-server and rabbitmqctl scripts
// behind the one on PATH. Debian's /usr/sbin/rabbitmq-server links to a
// wrapper that switches to the rabbitmq user; the real scripts sit beside
// the wrapper. rabbitmqctl is "" when it cannot be found.
func rabbitmqScripts(onPath string) (server, ctl string, err error) {
	resolved, err := filepath.EvalSymlinks(onPath)
	if err != nil {
		return "", "", fmt.Errorf("resolve %s: %w", onPath, err)
	}
	server = resolved
	if filepath.Base(resolved) != "rabbitmq-server" {
		sibling := filepath.Join(filepath.Dir(resolved), "rabbitmq-server")
		if real, err := filepath.EvalSymlinks(sibling); err == nil {
			server = real
		}
	}
	for _, dir := range []string{filepath.Dir(server), filepath.Dir(onPath)} {
		c := filepath.Join(dir, "rabbitmqctl")
		if real, err := filepath.EvalSymlinks(c); err == nil && filepath.Base(real) == "rabbitmqctl" {
			return server, real, nil
		}
	}
	return server, "", nil
}

// nodeFiles are the configuration files written for a private node.
type nodeFiles struct{ envConf, conf, plugins string }

func writeNodeFiles(dataDir string, t brokerTarget, prometheusPort, managementPort int) (nodeFiles, error) {
	for _, d := range []string{"home", "mnesia", "log"} {
		if err := os.MkdirAll(filepath.Join(dataDir, d), 0o700); err != nil {
			return nodeFiles{}, err
		}
	}
	f := nodeFiles{
		envConf: filepath.Join(dataDir, "rabbitmq-env.conf"),
		conf:    filepath.Join(dataDir, "rabbitmq.conf"),
		plugins: filepath.Join(dataDir, "enabled_plugins"),
	}
	conf := "# Written by the local stack for its private node; rewritten on every start.\n"
	if t.user != "guest" || t.pass != "guest" {
		conf += "default_user = " + t.user + "\ndefault_pass = " + t.pass + "\n"
	}
	if t.vhost != "/" {
		conf += "default_vhost = " + t.vhost + "\n"
	}
	// No plugins by default: the management plugin would want port 15672.
	plugins := "[].\n"
	if prometheusPort > 0 {
		// rabbitmq_prometheus on its own loopback port (a system node may hold 15692).
		plugins = "[rabbitmq_prometheus].\n"
		conf += "prometheus.tcp.ip = 127.0.0.1\nprometheus.tcp.port = " + strconv.Itoa(prometheusPort) + "\n"
	}
	plugins = withManagement(plugins, &conf, managementPort) // brokerusers_node.go
	writes := []struct{ path, body string }{
		// Keeps /etc/rabbitmq/rabbitmq-env.conf (and its NODENAME) out.
		{f.envConf, "# Private node of the local stack: its settings come from the environment.\n"},
		{f.conf, conf},
		{f.plugins, plugins},
	}
	for _, w := range writes {
		if err := os.WriteFile(w.path, []byte(w.body), 0o600); err != nil {
			return nodeFiles{}, err
		}
	}
	return f, nil
}

// nodeEnv is the node's minimal environment: no RABBITMQ_* or ERL_* setting
// of the user's, no credentials of the stack, its own HOME.
func nodeEnv(environ []string, home string) []string {
	keep := map[string]bool{
		"PATH": true, "TMPDIR": true, "USER": true, "LOGNAME": true, "TZ": true,
		"LANG": true, "LC_ALL": true, "LC_CTYPE": true,
		"ERL_EPMD_PORT": true, "ERL_EPMD_ADDRESS": true,
	}
	var env []string
	utf8 := false
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if keep[k] {
			env = append(env, kv)
			if (k == "LANG" || k == "LC_ALL" || k == "LC_CTYPE") && strings.Contains(strings.ToUpper(v), "UTF") {
				utf8 = true
			}
		}
	}
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "ERL_EPMD_ADDRESS=") }) {
		// Should the node have to start the port mapper, keep it on loopback.
		env = append(env, "ERL_EPMD_ADDRESS=127.0.0.1")
	}
	if !utf8 {
		// Keeps the Elixir-based rabbitmqctl from warning about latin1.
		env = append(env, "LC_ALL=C.UTF-8")
	}
	return append(env, "HOME="+home)
}

// runCtl runs rabbitmqctl against node with the node's environment.
func runCtl(ctl string, env []string, node string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), nodeStopTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctl, append([]string{"-n", node}, args...)...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("rabbitmqctl %s: %w: %s", strings.Join(args, " "), err, lastLine(out))
	}
	return nil
}

// freeLoopbackPort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freeLoopbackPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// epmdAnswers reports whether Erlang's port mapper listens on this machine.
func epmdAnswers() bool {
	port := os.Getenv("ERL_EPMD_PORT")
	if port == "" {
		port = epmdPort
	}
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// stopEpmd ends the port mapper the node started. epmd refuses while other
// nodes are still registered, so this never pulls it from under them.
func stopEpmd(env []string) {
	epmd, err := exec.LookPath("epmd")
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, epmd, "-kill")
	cmd.Env = env
	_ = cmd.Run()
}
