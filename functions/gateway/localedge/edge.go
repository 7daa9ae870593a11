// Package localedge is the local gateway's edge (cmd/gateway-local): bearer tokens verified here (HS256 or
// an identity provider's JWKS), Prometheus metrics, and GET /status's numbers as gauges. It never links
// aws-lambda-go.
package localedge

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/scrapeplatform/platform/functions/gateway"
	"github.com/scrapeplatform/platform/shared/auth"
	"github.com/scrapeplatform/platform/shared/broker"
)

// Build wires the HTTP API handler for the local server: bearer-token authentication, metrics (nil:
// none) and the job store when JOB_STORE_BUCKET names one. The caller runs client.Run for as long as the handler serves.
func Build(cfg Config, name string, log *slog.Logger, metrics *Metrics) (*gateway.Handler, *broker.RPCClient, error) {
	var v auth.Verifier
	var err error
	if cfg.JWTJWKSURL != "" {
		v, err = auth.NewJWKS(auth.JWKSConfig{URL: cfg.JWTJWKSURL, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience, MaxTTL: cfg.JWTMaxTTL})
	} else {
		v, err = auth.NewHS256(auth.HS256Config{Secret: []byte(cfg.JWTSecret), Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience,
			MaxTTL: cfg.JWTMaxTTL})
	}
	if err != nil {
		return nil, nil, fmt.Errorf("JWT verifier: %w", err)
	}
	rpc := cfg.Gateway.RPCConfig(name, log)
	var rec gateway.Recorder
	if metrics != nil {
		rec = metrics
		rpc.OnConnect, rpc.OnDisconnect, rpc.OnDrop = metrics.BrokerHooks()
	}
	store, err := cfg.Gateway.OpenJobStore(context.Background())
	if err != nil {
		return nil, nil, err
	}
	capacity, err := newManagementCapacity(cfg.ManagementURL)
	if err != nil {
		return nil, nil, fmt.Errorf("RABBITMQ_MANAGEMENT_URL: %w", err)
	}
	client := broker.NewRPCClient(rpc)
	h := gateway.New(cfg.Gateway, gateway.Options{Broker: client, Authenticator: BearerAuth{Verifier: v, Scopes: cfg.JWTScopes},
		Logger: log, Recorder: rec, Jobs: store, Callbacks: cfg.Gateway.OutboxCallbacks(context.Background(), name+"/webhooks", log),
		Capacity: capacity})
	return h, client, nil
}
