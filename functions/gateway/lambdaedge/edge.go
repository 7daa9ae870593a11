// Package lambdaedge is the Lambda bootstrap's edge (cmd/gateway): API Gateway's authorizers (JWT claims or
// an IAM identity from the request context that httpadapter fills in), CloudWatch EMF metrics, and the
// Lambda defaults. It never links Prometheus' client_golang.
package lambdaedge

import (
	"context"
	"io"
	"log/slog"

	"github.com/scrapeplatform/platform/functions/gateway"
	"github.com/scrapeplatform/platform/shared/broker"
)

// Build wires the HTTP API handler for Lambda: API Gateway authentication and, when cfg.EMFNamespace is
// set, EMF metrics written to metricsOut (stdout in Lambda), and the job store (the stack's results bucket,
// JOB_STORE_BUCKET). The caller runs client.Run for as long as the handler serves.
func Build(cfg Config, name string, log *slog.Logger, metricsOut io.Writer) (*gateway.Handler, *broker.RPCClient, error) {
	rpc := cfg.Gateway.RPCConfig(name, log)
	var rec gateway.Recorder
	if cfg.EMFNamespace != "" && metricsOut != nil {
		emf := NewEMF(metricsOut, cfg.EMFNamespace, cfg.Stage)
		rec, rpc.OnDrop = emf, emf.ReplyDropped
	}
	store, err := cfg.Gateway.OpenJobStore(context.Background())
	if err != nil {
		return nil, nil, err
	}
	client := broker.NewRPCClient(rpc)
	h := gateway.New(cfg.Gateway, gateway.Options{Broker: client, Authenticator: APIGatewayAuth{}, Logger: log, Recorder: rec, Jobs: store,
		Callbacks: cfg.Gateway.OutboxCallbacks(context.Background(), name+"/webhooks", log)})
	return h, client, nil
}
