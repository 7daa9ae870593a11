// Package brokersecret turns the broker user's credentials, kept in AWS Secrets Manager, into the URLs the
// functions dial, so the password never sits in a Lambda's plain environment.
//
// In AWS the infra stack generates each process's broker user's password (the users the BrokerUsers custom
// resource makes, package brokerusers) into a secret holding {"username": …, "password": …} and hands the
// functions its ARN (RABBITMQ_SECRET_ARN) and the broker's
// endpoint without credentials (RABBITMQ_ENDPOINT, e.g. amqps://b-1234.mq.eu-west-1.on.aws:5671).
// Locally neither is set and RABBITMQ_URL is used as it is.
package brokersecret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// Environment variables this package reads.
const (
	// EnvURL is the complete broker URL; when it is set, the secret is not read.
	EnvURL = "RABBITMQ_URL"
	// EnvSecretARN names the Secrets Manager secret with the broker user's credentials.
	EnvSecretARN = "RABBITMQ_SECRET_ARN"
	// EnvEndpoint is the broker URL without credentials.
	EnvEndpoint = "RABBITMQ_ENDPOINT"
)

// SecretGetter is the one Secrets Manager call this package makes; *secretsmanager.Client satisfies it.
type SecretGetter interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

var _ SecretGetter = (*secretsmanager.Client)(nil)

// Credentials are a broker user's name and password.
type Credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Fetch reads the secret secretID and decodes its JSON {"username", "password"}.
func Fetch(ctx context.Context, sm SecretGetter, secretID string) (Credentials, error) {
	out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secretID)})
	if err != nil {
		return Credentials{}, fmt.Errorf("read broker secret %s: %w", secretID, err)
	}
	if out.SecretString == nil {
		return Credentials{}, fmt.Errorf("broker secret %s has no string value", secretID)
	}
	return Parse(*out.SecretString)
}

// Parse decodes a secret string of the form {"username": …, "password": …}. Its errors never quote the
// secret.
func Parse(secret string) (Credentials, error) {
	var c Credentials
	if err := json.Unmarshal([]byte(secret), &c); err != nil {
		return Credentials{}, errors.New("broker secret is not a JSON object with username and password")
	}
	if c.Username == "" || c.Password == "" {
		return Credentials{}, errors.New("broker secret lacks username or password")
	}
	return c, nil
}

// URL returns endpoint with the credentials as its user info: amqps://host:5671 becomes
// amqps://user:password@host:5671 (escaped as URLs require). The endpoint must carry no credentials.
func (c Credentials) URL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return "", fmt.Errorf("broker endpoint: %w", err)
	}
	if u.Scheme == "" || u.Host == "" {
		return "", fmt.Errorf("broker endpoint %q is not an absolute URL such as amqps://host:5671", endpoint)
	}
	if u.User != nil {
		return "", fmt.Errorf("broker endpoint %q already carries credentials", u.Redacted())
	}
	u.User = url.UserPassword(c.Username, c.Password)
	return u.String(), nil
}

// NewClient returns a Secrets Manager client from the default AWS configuration (the Lambda's role).
func NewClient(ctx context.Context) (SecretGetter, error) {
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	return secretsmanager.NewFromConfig(cfg), nil
}

// Getenv returns getenv, answering RABBITMQ_URL with the URL built from the secret RABBITMQ_SECRET_ARN and
// RABBITMQ_ENDPOINT when RABBITMQ_URL itself is unset. When RABBITMQ_SECRET_ARN is unset it returns getenv
// unchanged and never calls newClient.
func Getenv(ctx context.Context, getenv func(string) string, newClient func(context.Context) (SecretGetter, error)) (func(string) string, error) {
	arn := getenv(EnvSecretARN)
	if getenv(EnvURL) != "" || arn == "" {
		return getenv, nil
	}
	endpoint := getenv(EnvEndpoint)
	if endpoint == "" {
		return nil, fmt.Errorf("%s is set but %s is not", EnvSecretARN, EnvEndpoint)
	}
	sm, err := newClient(ctx)
	if err != nil {
		return nil, err
	}
	creds, err := Fetch(ctx, sm, arn)
	if err != nil {
		return nil, err
	}
	brokerURL, err := creds.URL(endpoint)
	if err != nil {
		return nil, err
	}
	return func(name string) string {
		if name == EnvURL {
			return brokerURL
		}
		return getenv(name)
	}, nil
}
