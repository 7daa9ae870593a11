package main

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/scrapeplatform/platform/local/stack"
)

// brokerUsersFile keeps the stack's broker users (names and generated passwords) in the data folder.
const brokerUsersFile = "broker-users.json"

// freeManagementPort is a loopback port for a private node's management API (0 when none is free).
func freeManagementPort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// brokerUsers gives the gateway and the workers least-privilege users of their own (stack.ProvisionBrokerUsers)
// on the stack's broker, created with RABBITMQ_URL's credentials, which then stay with localstack. It
// returns the gateway's and the workers' extra environment; when the users cannot be made (no management
// API answers) both are nil, and one warning says that the platform's processes use RABBITMQ_URL's user.
//
// A broker found running gets the users through its management API, else (the machine's own broker without
// the plugin) through rabbitmqctl; either only once the broker reached that way shows it listens on
// RABBITMQ_URL's port. Its users are removed again at the stop (remove, called last); a broker the stack
// started keeps them with its data.
func brokerUsers(ctx context.Context, cfg config, brk stack.Broker, log *slog.Logger) (gatewayEnv, workerEnv []string, remove func()) {
	remove = func() {}
	o := stack.BrokerUsersOptions{
		AdminURL: cfg.rabbitMQURL, ManagementURL: brk.ManagementURL, TaskQueue: cfg.taskQueue,
		StateFile: filepath.Join(cfg.dataDir, brokerUsersFile),
	}
	if u, err := url.Parse(cfg.rabbitMQURL); brk.Origin == stack.BrokerFound && err == nil && isLoopback(u.Hostname()) {
		if ctl, err := exec.LookPath("rabbitmqctl"); err == nil {
			o.Ctl = []string{ctl}
		}
	}
	users, err := stack.ProvisionBrokerUsers(ctx, o)
	if err != nil {
		log.Warn("could not create least-privilege broker users, so the gateway and the workers use RABBITMQ_URL's user "+
			"(enable the broker's management plugin, or set RABBITMQ_MANAGEMENT_URL)", "err", err)
		return nil, nil, remove
	}
	gw, _ := url.Parse(users.GatewayURL)
	wk, _ := url.Parse(users.WorkerURL)
	attrs := []any{"gateway", gw.User.Username(), "workers", wk.User.Username(), "monitoring", users.MonitoringUser,
		"status", users.StatusUser, "passwords", filepath.Join(cfg.dataDir, brokerUsersFile)}
	attrs = append(attrs, "via", users.Via)
	if brk.Origin == stack.BrokerFound {
		log.Info("created least-privilege users on the broker found running; they are removed when the stack stops", attrs...)
		remove = func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := stack.DeleteBrokerUsers(ctx, o); err != nil {
				log.Warn("removing the stack's users from the broker found running", "err", err)
			}
		}
	} else {
		log.Info("least-privilege broker users with generated passwords", attrs...)
	}
	gatewayEnv = []string{"RABBITMQ_URL=" + users.GatewayURL}
	if m, err := url.Parse(brk.ManagementURL); err == nil && m.Host != "" && users.StatusUser != "" {
		// GET /status reads the workers' in-flight tasks and capacity with the status user (read only).
		m.User = url.UserPassword(users.StatusUser, users.StatusPass)
		gatewayEnv = append(gatewayEnv, "RABBITMQ_MANAGEMENT_URL="+m.String())
	}
	return gatewayEnv, []string{"RABBITMQ_URL=" + users.WorkerURL}, remove
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
