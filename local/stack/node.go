package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Node is a private RabbitMQ node that tests start, stop, crash, restart and cluster: fault tests need a
// broker of their own, never the machine's shared one. Its database lives in BrokerOptions.DataDir, so a
// restarted node keeps its queues and messages.
type Node struct {
	o      BrokerOptions
	name   string
	port   string
	cookie string

	mu   sync.Mutex
	stop func() error // nil while the node is down
}

// StartNode starts a private node for o.URL (an amqp:// URL on a loopback port where nothing answers yet)
// with its data in o.DataDir. cookie, when set, becomes the node's Erlang cookie: nodes that share one can
// form a cluster (JoinCluster).
func StartNode(ctx context.Context, o BrokerOptions, cookie string) (*Node, error) {
	t, err := parseBrokerURL(o.URL)
	if err != nil {
		return nil, err
	}
	if !isLoopbackHost(t.host) || t.tls {
		return nil, fmt.Errorf("a private node needs an amqp:// URL on loopback, not one for %s", t.addr)
	}
	if err := probeAMQP(ctx, t.addr, false, time.Second); err == nil {
		return nil, fmt.Errorf("a broker already answers at %s: a private node needs a port of its own", t.addr)
	}
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		return nil, errors.New("a private RabbitMQ node needs rabbitmq-server installed (apt-get install rabbitmq-server)")
	}
	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, err
	}
	o.DataDir = dataDir
	n := &Node{o: o, name: NodeName(t.port), port: t.port, cookie: cookie}
	return n, n.Start(ctx)
}

// Name is the node's Erlang name, e.g. scrape-local-5673@localhost.
func (n *Node) Name() string { return n.name }

// URL is the node's AMQP URL.
func (n *Node) URL() string { return n.o.URL }

// Start starts the node again after Stop or Halt, on the same data.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stop != nil {
		return nil
	}
	if n.cookie != "" {
		home := filepath.Join(n.o.DataDir, "home")
		if err := os.MkdirAll(home, 0o700); err != nil {
			return err
		}
		cookie := filepath.Join(home, ".erlang.cookie")
		_ = os.Chmod(cookie, 0o600)
		if err := os.WriteFile(cookie, []byte(n.cookie), 0o400); err != nil {
			return fmt.Errorf("write the Erlang cookie: %w", err)
		}
	}
	stop, err := EnsureBrokerWith(ctx, n.o)
	if err != nil {
		return err
	}
	n.stop = stop
	return nil
}

// Stop shuts the node down gracefully (rabbitmqctl stop). It is safe to call when the node is down.
func (n *Node) Stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stop == nil {
		return nil
	}
	err := n.stop()
	n.stop = nil
	return err
}

// Halt crashes the node: the Erlang VM exits at once (erlang:halt/0), without closing connections or handing
// queue leadership over, as when a machine dies. Start brings it back.
func (n *Node) Halt() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stop == nil {
		return nil
	}
	// The call never answers: the node is gone before it can.
	_, _ = n.ctl(context.Background(), 10*time.Second, "eval", "erlang:halt().")
	err := n.stop() // reaps the process; rabbitmqctl stop finds the node gone
	n.stop = nil
	return err
}

// Ctl runs rabbitmqctl against the node (with its Erlang cookie) and returns its output.
func (n *Node) Ctl(ctx context.Context, args ...string) (string, error) {
	return n.ctl(ctx, time.Minute, args...)
}

func (n *Node) ctl(ctx context.Context, timeout time.Duration, args ...string) (string, error) {
	server, err := exec.LookPath("rabbitmq-server")
	if err != nil {
		return "", err
	}
	_, ctl, err := rabbitmqScripts(server)
	if err != nil || ctl == "" {
		return "", fmt.Errorf("rabbitmqctl not found next to %s", server)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ctl, append([]string{"-n", n.name}, args...)...)
	cmd.Env = nodeEnv(os.Environ(), filepath.Join(n.o.DataDir, "home"))
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbitmqctl -n %s %s: %w: %s", n.name, strings.Join(args, " "), err, lastLine(out))
	}
	return string(out), nil
}

// JoinCluster makes each of members join seed's cluster (stop_app, reset, join_cluster, start_app). Every
// node must have been started with the same Erlang cookie.
func JoinCluster(ctx context.Context, seed *Node, members ...*Node) error {
	for _, m := range members {
		for _, args := range [][]string{{"stop_app"}, {"reset"}, {"join_cluster", seed.Name()}, {"start_app"}, {"await_startup"}} {
			if _, err := m.Ctl(ctx, args...); err != nil {
				return fmt.Errorf("join %s to %s: %w", m.Name(), seed.Name(), err)
			}
		}
	}
	return nil
}

// StartCluster starts one private node per BrokerOptions, all at once and sharing cookie, and joins the
// others to the first. On error it stops what it started.
func StartCluster(ctx context.Context, cookie string, opts ...BrokerOptions) ([]*Node, error) {
	nodes := make([]*Node, len(opts))
	errs := make([]error, len(opts))
	var wg sync.WaitGroup
	for i, o := range opts {
		wg.Go(func() { nodes[i], errs[i] = StartNode(ctx, o, cookie) })
	}
	wg.Wait()
	stopAll := func() {
		for _, n := range nodes {
			if n != nil {
				_ = n.Stop()
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		stopAll()
		return nil, err
	}
	if len(nodes) > 1 {
		if err := JoinCluster(ctx, nodes[0], nodes[1:]...); err != nil {
			stopAll()
			return nil, err
		}
	}
	return nodes, nil
}
