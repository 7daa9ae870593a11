package main

import (
	"context"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"

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
func brokerUsers(ctx context.Context, cfg config, brk stack.Broker, log *slog.Logger) (gatewayEnv, workerEnv []string) {
	if brk.ManagementURL == "" {
		log.Warn("the broker's management API is unknown, so the gateway and the workers use RABBITMQ_URL's user (least-privilege users need it: set RABBITMQ_MANAGEMENT_URL)")
		return nil, nil
	}
	users, err := stack.ProvisionBrokerUsers(ctx, stack.BrokerUsersOptions{
		AdminURL: cfg.rabbitMQURL, ManagementURL: brk.ManagementURL, TaskQueue: cfg.taskQueue,
		StateFile: filepath.Join(cfg.dataDir, brokerUsersFile),
	})
	if err != nil {
		log.Warn("could not create least-privilege broker users, so the gateway and the workers use RABBITMQ_URL's user "+
			"(enable the management plugin, or set RABBITMQ_MANAGEMENT_URL)", "err", err)
		return nil, nil
	}
	gw, _ := url.Parse(users.GatewayURL)
	wk, _ := url.Parse(users.WorkerURL)
	attrs := []any{"gateway", gw.User.Username(), "workers", wk.User.Username(), "monitoring", users.MonitoringUser,
		"passwords", filepath.Join(cfg.dataDir, brokerUsersFile)}
	if brk.Origin == stack.BrokerFound {
		log.Info("created least-privilege users on the broker found running (they stay there; rabbitmqctl delete_user removes them)", attrs...)
	} else {
		log.Info("least-privilege broker users with generated passwords", attrs...)
	}
	return []string{"RABBITMQ_URL=" + users.GatewayURL}, []string{"RABBITMQ_URL=" + users.WorkerURL}
}
