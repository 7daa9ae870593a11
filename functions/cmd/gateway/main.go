// Command gateway is the API's AWS Lambda entry point (the "bootstrap" of a provided.al2023 function): the
// gateway handler behind aws-lambda-go-api-proxy's API Gateway v2 adapter. Build it with
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -o bootstrap ./cmd/gateway
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/scrapeplatform/platform/functions/brokersecret"
	"github.com/scrapeplatform/platform/functions/gateway"
	"github.com/scrapeplatform/platform/functions/gateway/lambdaedge"
)

// machinePrefix is where API Gateway's IAM-authorized routes for machine clients live (/iam/scrape, …);
// they reach the same handler with the prefix removed.
const machinePrefix = "/iam"

func main() {
	// In AWS the broker password comes from Secrets Manager (RABBITMQ_SECRET_ARN + RABBITMQ_ENDPOINT), read
	// once per execution environment during init; locally RABBITMQ_URL is used as it is.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	getenv, err := brokersecret.Getenv(ctx, os.Getenv, brokersecret.NewClient)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "gateway: broker credentials: %v\n", err)
		os.Exit(2)
	}
	cfg, err := lambdaedge.LoadConfig(getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gateway: invalid configuration:\n%v\n", err)
		os.Exit(2)
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Gateway.LogLevel))
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: level}))
	// The Lambda edge: API Gateway's authorizers, EMF metrics on stdout.
	h, client, err := lambdaedge.Build(cfg, "gateway-lambda", log, os.Stdout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gateway: job store: %v\n", err)
		os.Exit(2)
	}
	// One connection per execution environment, dialled during init and kept across invocations.
	go func() { _ = client.Run(context.Background()) }()
	lambda.Start(httpadapter.NewV2(routes(h)).ProxyWithContext)
}

// routes serves h at / (JWT-authorized routes) and under machinePrefix (IAM-authorized routes).
func routes(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", h)
	iam := http.StripPrefix(machinePrefix, h)
	mux.Handle(machinePrefix+"/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A job's Location stays under the prefix: IAM clients poll /iam/jobs/{id}.
		iam.ServeHTTP(w, gateway.WithBasePath(r, machinePrefix))
	}))
	return mux
}
