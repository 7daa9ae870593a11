// Command brokerusers is the BrokerUsers CloudFormation custom resource's Lambda: it makes the broker's
// least-privilege users (the gateway's, the workers' and the queue-depth Lambda's monitoring user) with the
// Amazon MQ administrator's credentials. See package brokerusers. Build it like the other Lambdas:
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -o bootstrap ./cmd/brokerusers
package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/scrapeplatform/platform/functions/brokerusers"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	cancel()
	if err != nil {
		log.Error("AWS configuration", "error", err)
		os.Exit(2)
	}
	p := &brokerusers.Provisioner{Secrets: secretsmanager.NewFromConfig(awsCfg), Log: log}
	lambda.Start(p.Lambda())
}
