// Package s3client builds the platform's S3 clients: the worker's script repository (and scrapectl, which
// publishes scripts there) and the gateway's and worker's job store both reach S3 or an S3-compatible
// server (versitygw locally) the same way, so the client is built in one place.
package s3client

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Config says how to reach S3.
type Config struct {
	// Region may be empty: the SDK's default chain (AWS_REGION, shared config) decides; with an Endpoint
	// it defaults to us-east-1.
	Region string
	// AccessKey and SecretKey are static credentials (both or neither); without them the SDK's default
	// chain is used (the environment, shared files, the ECS task role, instance metadata).
	AccessKey string
	SecretKey string
	// Endpoint overrides the S3 endpoint (an S3-compatible server such as versitygw or MinIO); addressing
	// is then path-style, and checksums are sent and checked only where an operation needs them.
	Endpoint string
	// MaxAttempts and MaxBackoff, when set, bound the SDK's retries (the SDK's standard retryer otherwise),
	// so that a caller that must answer soon gives up within a few seconds when the store is down.
	MaxAttempts int
	MaxBackoff  time.Duration
	// WrapHTTPClient, when set, wraps the SDK's HTTP client (scrapectl counts upload progress with it).
	WrapHTTPClient func(aws.HTTPClient) aws.HTTPClient
}

// New builds an S3 client from cfg. It checks what it can locally (both keys or neither, the endpoint's
// URL, a region) and does not contact S3.
func New(ctx context.Context, cfg Config) (*s3.Client, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if cfg.MaxAttempts > 0 || cfg.MaxBackoff > 0 {
		opts = append(opts, awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				if cfg.MaxAttempts > 0 {
					o.MaxAttempts = cfg.MaxAttempts
				}
				if cfg.MaxBackoff > 0 {
					o.MaxBackoff = cfg.MaxBackoff
				}
			})
		}))
	}
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return nil, errors.New("s3: set both the access key and the secret key, or neither")
	}
	if cfg.AccessKey != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	if cfg.Endpoint != "" {
		u, err := url.Parse(cfg.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("s3: endpoint %q is not an http(s) URL", cfg.Endpoint)
		}
		if cfg.Region == "" {
			opts = append(opts, awsconfig.WithRegion("us-east-1"))
		}
		// S3-compatible servers vary in their support of the SDK's default CRC trailers (aws-chunked
		// uploads); send and check checksums only where an operation needs them. Script bundles carry their
		// own SHA-256 in the object's metadata, which the worker checks.
		opts = append(opts,
			awsconfig.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
			awsconfig.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return nil, errors.New("s3: no region: set S3_REGION (or AWS_REGION)")
	}
	return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.WrapHTTPClient != nil {
			o.HTTPClient = cfg.WrapHTTPClient(o.HTTPClient)
		}
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
			o.UsePathStyle = true
		}
	}), nil
}

// NormalizePrefix returns a key prefix without a leading "/" and with a trailing one (unless it is
// empty).
func NormalizePrefix(prefix string) string {
	prefix = strings.TrimPrefix(prefix, "/")
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return prefix
}
