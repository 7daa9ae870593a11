package gateway

import (
	"fmt"
	"log/slog"

	"github.com/scrapeplatform/platform/shared/auth"
	"github.com/scrapeplatform/platform/shared/broker"
)

// Build wires a Handler and its RPC client from cfg, the same way for Lambda and the local server. The
// caller runs client.Run for as long as the handler serves.
func Build(cfg Config, name string, log *slog.Logger, metrics *Metrics) (*Handler, *broker.RPCClient, error) {
	var authn Authenticator
	switch cfg.AuthMode {
	case "jwt":
		v, err := auth.NewHS256(auth.HS256Config{Secret: []byte(cfg.JWTSecret), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
		if err != nil {
			return nil, nil, fmt.Errorf("JWT verifier: %w", err)
		}
		authn = BearerAuth{Verifier: v}
	case "apigateway":
		authn = APIGatewayAuth{}
	default:
		return nil, nil, fmt.Errorf("unknown AUTH_MODE %q", cfg.AuthMode)
	}
	onConnect, onDisconnect, onDrop := metrics.BrokerHooks()
	client := broker.NewRPCClient(broker.RPCConfig{
		URL: cfg.RabbitMQURL, Name: name, Topology: broker.NewTopology(cfg.TaskQueue), Logger: log,
		OnConnect: onConnect, OnDisconnect: onDisconnect, OnDrop: onDrop,
	})
	h := New(cfg, Options{Broker: client, Authenticator: authn, Logger: log, Metrics: metrics})
	return h, client, nil
}
