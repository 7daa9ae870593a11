// Command gateway is the API's AWS Lambda entry point (the "bootstrap" of a provided.al2023 function): the
// gateway handler behind aws-lambda-go-api-proxy's API Gateway v2 adapter. Build it with
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -o bootstrap ./cmd/gateway
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/scrapeplatform/platform/functions/gateway"
)

func main() {
	cfg, err := gateway.LoadConfig(os.Getenv, "apigateway")
	if err != nil {
		fmt.Fprintf(os.Stderr, "gateway: invalid configuration:\n%v\n", err)
		os.Exit(2)
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: level}))
	h, client, err := gateway.Build(cfg, "gateway-lambda", log, nil)
	if err != nil {
		log.Error("gateway setup", "error", err)
		os.Exit(2)
	}
	// One connection per execution environment, dialled during init and kept across invocations.
	go func() { _ = client.Run(context.Background()) }()
	lambda.Start(httpadapter.NewV2(h).ProxyWithContext)
}
