package gateway

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/scrapeplatform/platform/shared/auth"
	"github.com/scrapeplatform/platform/shared/broker"
)

// Build wires a Handler and its RPC client from cfg, the same way for Lambda and the local server. The
// caller runs client.Run for as long as the handler serves.
func Build(cfg Config, name string, log *slog.Logger, metrics *Metrics) (*Handler, *broker.RPCClient, error) {
	var authn Authenticator
	switch cfg.AuthMode {
	case "jwt":
		var v auth.Verifier
		var err error
		if cfg.JWTJWKSURL != "" {
			v, err = auth.NewJWKS(auth.JWKSConfig{URL: cfg.JWTJWKSURL, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
		} else {
			v, err = auth.NewHS256(auth.HS256Config{Secret: []byte(cfg.JWTSecret), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
		}
		if err != nil {
			return nil, nil, fmt.Errorf("JWT verifier: %w", err)
		}
		authn = BearerAuth{Verifier: v, Scopes: cfg.JWTScopes}
	case "apigateway":
		authn = APIGatewayAuth{}
	default:
		return nil, nil, fmt.Errorf("unknown AUTH_MODE %q", cfg.AuthMode)
	}
	var rec Recorder = nopRecorder{}
	var onConnect func()
	var onDisconnect func(error)
	switch {
	case metrics != nil:
		rec = metrics
		onConnect, onDisconnect, _ = metrics.BrokerHooks()
	case cfg.EMFNamespace != "":
		rec = NewEMF(os.Stdout, cfg.EMFNamespace, cfg.Stage)
	}
	client := broker.NewRPCClient(broker.RPCConfig{
		URL: cfg.RabbitMQURL, Name: name, Topology: broker.NewTopology(cfg.TaskQueue), Logger: log,
		OnConnect: onConnect, OnDisconnect: onDisconnect, OnDrop: rec.ReplyDropped,
	})
	h := New(cfg, Options{Broker: client, Authenticator: authn, Logger: log, Recorder: rec})
	return h, client, nil
}
