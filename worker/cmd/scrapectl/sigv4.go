package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
)

// Machine clients (CI jobs, other services) call the API's IAM routes: in AWS, API Gateway serves every
// route again under /iam with AWS_IAM authorization (functions/README.md), so a caller with
// execute-api:Invoke on the stack output ApiIamRoutesArn needs no user pool token. --auth sigv4
// (SCRAPE_AUTH=sigv4) sends scrape and jobs there, each request signed with AWS Signature Version 4 by the
// AWS default credential chain (environment, shared profile, SSO, the task or instance role).

// The values of --auth.
const (
	authBearer = "bearer"
	authSigV4  = "sigv4"
)

// iamPrefix is where the IAM-authorized copies of the routes live (infra/platform's MachinePrefix).
const iamPrefix = "/iam"

// sigv4Signer signs the API's requests for API Gateway (service execute-api).
type sigv4Signer struct {
	creds  aws.CredentialsProvider
	region string
	signer *v4.Signer
	now    func() time.Time
}

// newSigV4 returns the signer of requests to base: region is --region's value, else the region in an
// API Gateway host name (<id>.execute-api.<region>.amazonaws.com), else the AWS configuration's
// (AWS_REGION, the profile). creds nil takes the AWS default credential chain.
func newSigV4(ctx context.Context, base *url.URL, region string, creds aws.CredentialsProvider) (*sigv4Signer, error) {
	if region == "" {
		region = regionOfHost(base.Hostname())
	}
	if creds == nil || region == "" {
		var opts []func(*awsconfig.LoadOptions) error
		if region != "" {
			opts = append(opts, awsconfig.WithRegion(region))
		}
		cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("--auth sigv4: reading the AWS configuration: %w", err)
		}
		if creds == nil {
			creds = cfg.Credentials
		}
		region = cfg.Region
	}
	if region == "" {
		return nil, fmt.Errorf("%w: --auth sigv4 needs the API's region: --region, AWS_REGION, or an API Gateway URL (https://ID.execute-api.REGION.amazonaws.com)", errUsage)
	}
	// Fail now, with what to set, rather than on every retry of the first request.
	if creds == nil {
		return nil, errNoAWSCredentials(nil)
	}
	if _, err := creds.Retrieve(ctx); err != nil {
		return nil, errNoAWSCredentials(err)
	}
	return &sigv4Signer{creds: creds, region: region, signer: v4.NewSigner(), now: time.Now}, nil
}

func errNoAWSCredentials(cause error) error {
	msg := "--auth sigv4: the AWS default credential chain found no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with a role)"
	if cause == nil {
		return errors.New(msg)
	}
	return fmt.Errorf("%s: %w", msg, cause)
}

// sign signs req, whose body is body (nil: none), as of now: each attempt of a retried request is signed
// anew. Credentials are fetched (and refreshed, when they expire) by the provider.
func (s *sigv4Signer) sign(ctx context.Context, req *http.Request, body []byte) error {
	creds, err := s.creds.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("--auth sigv4: no AWS credentials: %w", err)
	}
	sum := sha256.Sum256(body)
	if err := s.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "execute-api", s.region, s.now()); err != nil {
		return fmt.Errorf("--auth sigv4: signing the request: %w", err)
	}
	return nil
}

// regionOfHost returns the region of an API Gateway host name (<id>.execute-api.<region>.amazonaws.com,
// or .amazonaws.com.cn), or "" for any other host (a custom domain name says nothing of its region).
func regionOfHost(host string) string {
	labels := strings.Split(strings.ToLower(host), ".")
	if len(labels) < 5 || labels[1] != "execute-api" || labels[3] != "amazonaws" || labels[4] != "com" {
		return ""
	}
	return labels[2]
}

// iamBase returns base (without a trailing slash) with the IAM routes' prefix, unless it has it already.
func iamBase(base string) string {
	if strings.HasSuffix(base, iamPrefix) {
		return base
	}
	return base + iamPrefix
}
