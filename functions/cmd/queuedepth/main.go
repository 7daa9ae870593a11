// Command queuedepth is the scheduled Lambda (EventBridge, every minute) that reads the task queue's depth
// from the broker's management API and publishes it, with the worker service's task counts, as CloudWatch
// metrics for backlog-per-task autoscaling. See package queuedepth. Build it like the gateway:
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -o bootstrap ./cmd/queuedepth
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/scrapeplatform/platform/functions/brokersecret"
	"github.com/scrapeplatform/platform/functions/queuedepth"
)

func main() {
	cfg, err := queuedepth.LoadConfig(os.Getenv)
	if err != nil {
		fmt.Fprintf(os.Stderr, "queuedepth: invalid configuration:\n%v\n", err)
		os.Exit(2)
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: level}))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	cancel()
	if err != nil {
		log.Error("AWS configuration", "error", err)
		os.Exit(2)
	}
	c := &queuedepth.Collector{
		Config:     cfg,
		Management: management(cfg, secretsmanager.NewFromConfig(awsCfg)),
		ECS:        ecs.NewFromConfig(awsCfg),
		CloudWatch: cloudwatch.NewFromConfig(awsCfg),
		Log:        log,
		Now:        time.Now,
	}
	lambda.Start(func(ctx context.Context) error {
		_, err := c.Run(ctx)
		return err
	})
}

// management returns the collector's management-client factory: credentials from the secret, read on
// every run (one GetSecretValue a minute) so that a rotated password needs no redeploy, or the fixed
// user and password of a local run.
func management(cfg queuedepth.Config, sm brokersecret.SecretGetter) func(context.Context) (*queuedepth.Management, error) {
	return func(ctx context.Context) (*queuedepth.Management, error) {
		user, pass := cfg.Username, cfg.Password
		if cfg.SecretARN != "" {
			creds, err := brokersecret.Fetch(ctx, sm, cfg.SecretARN)
			if err != nil {
				return nil, err
			}
			user, pass = creds.Username, creds.Password
		}
		return queuedepth.NewManagement(cfg.ManagementURL, user, pass, cfg.Timeout)
	}
}
