package brokersecret

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// fakeSecrets is a Secrets Manager double that knows one secret.
type fakeSecrets struct {
	id, value string
	calls     int
}

func (f *fakeSecrets) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	f.calls++
	if aws.ToString(in.SecretId) != f.id {
		return nil, errors.New("ResourceNotFoundException: secret not found")
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(f.value)}, nil
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestURL(t *testing.T) {
	tests := []struct {
		name, endpoint string
		creds          Credentials
		want           string
		wantErr        string
	}{
		{name: "amazon mq endpoint", endpoint: "amqps://b-1234.mq.eu-west-1.on.aws:5671", creds: Credentials{"scraper", "s3cretPassw0rd"},
			want: "amqps://scraper:s3cretPassw0rd@b-1234.mq.eu-west-1.on.aws:5671"},
		{name: "management endpoint", endpoint: "https://b-1234.mq.eu-west-1.on.aws", creds: Credentials{"scraper", "pw"},
			want: "https://scraper:pw@b-1234.mq.eu-west-1.on.aws"},
		{name: "reserved characters are escaped", endpoint: "amqps://host:5671", creds: Credentials{"a@b", "p:w/d@x%"},
			want: "amqps://a%40b:p%3Aw%2Fd%40x%25@host:5671"},
		{name: "relative endpoint", endpoint: "host:5671", creds: Credentials{"u", "p"}, wantErr: "not an absolute URL"},
		{name: "endpoint with credentials", endpoint: "amqps://x:y@host:5671", creds: Credentials{"u", "p"}, wantErr: "already carries credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.creds.URL(tt.endpoint)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("URL() error = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "y@") {
					t.Fatalf("error leaks the endpoint's password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("URL(): %v", err)
			}
			if got != tt.want {
				t.Fatalf("URL() = %q, want %q", got, tt.want)
			}
			u, err := url.Parse(got)
			if err != nil {
				t.Fatalf("result does not parse: %v", err)
			}
			if p, _ := u.User.Password(); u.User.Username() != tt.creds.Username || p != tt.creds.Password {
				t.Fatalf("round trip gave %q/%q, want %q/%q", u.User.Username(), p, tt.creds.Username, tt.creds.Password)
			}
		})
	}
}

func TestParse(t *testing.T) {
	if c, err := Parse(`{"username":"scraper","password":"pw123456789012"}`); err != nil || c.Username != "scraper" || c.Password != "pw123456789012" {
		t.Fatalf("Parse = %+v, %v", c, err)
	}
	for _, bad := range []string{``, `not json but secret-value`, `{"username":"u"}`, `{"password":"secret-value"}`, `[]`} {
		_, err := Parse(bad)
		if err == nil {
			t.Fatalf("Parse(%q) succeeded", bad)
		}
		if strings.Contains(err.Error(), "secret-value") {
			t.Fatalf("Parse error quotes the secret: %v", err)
		}
	}
}

func TestGetenv(t *testing.T) {
	ctx := context.Background()
	const arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:broker-AbCdEf"
	sm := &fakeSecrets{id: arn, value: `{"username":"scraper","password":"Abc123def456ghi"}`}
	newClient := func(context.Context) (SecretGetter, error) { return sm, nil }

	t.Run("builds RABBITMQ_URL from the secret", func(t *testing.T) {
		getenv, err := Getenv(ctx, env(map[string]string{EnvSecretARN: arn, EnvEndpoint: "amqps://b-1.mq.eu-west-1.on.aws:5671", "OTHER": "x"}), newClient)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := getenv(EnvURL), "amqps://scraper:Abc123def456ghi@b-1.mq.eu-west-1.on.aws:5671"; got != want {
			t.Fatalf("RABBITMQ_URL = %q, want %q", got, want)
		}
		if getenv("OTHER") != "x" {
			t.Fatal("other variables are not passed through")
		}
	})
	t.Run("an explicit RABBITMQ_URL wins and the secret is not read", func(t *testing.T) {
		before := sm.calls
		getenv, err := Getenv(ctx, env(map[string]string{EnvURL: "amqp://guest:guest@127.0.0.1:5672/", EnvSecretARN: arn}), newClient)
		if err != nil {
			t.Fatal(err)
		}
		if getenv(EnvURL) != "amqp://guest:guest@127.0.0.1:5672/" || sm.calls != before {
			t.Fatalf("RABBITMQ_URL = %q after %d secret reads", getenv(EnvURL), sm.calls-before)
		}
	})
	t.Run("no secret configured: unchanged, no AWS client", func(t *testing.T) {
		getenv, err := Getenv(ctx, env(map[string]string{}), func(context.Context) (SecretGetter, error) {
			t.Fatal("newClient called without RABBITMQ_SECRET_ARN")
			return nil, nil
		})
		if err != nil || getenv(EnvURL) != "" {
			t.Fatalf("got %q, %v", getenv(EnvURL), err)
		}
	})
	t.Run("secret without endpoint", func(t *testing.T) {
		if _, err := Getenv(ctx, env(map[string]string{EnvSecretARN: arn}), newClient); err == nil || !strings.Contains(err.Error(), EnvEndpoint) {
			t.Fatalf("error = %v, want one naming %s", err, EnvEndpoint)
		}
	})
	t.Run("unknown secret", func(t *testing.T) {
		_, err := Getenv(ctx, env(map[string]string{EnvSecretARN: arn + "-gone", EnvEndpoint: "amqps://h:5671"}), newClient)
		if err == nil || !strings.Contains(err.Error(), "not found") {
			t.Fatalf("error = %v, want the Secrets Manager error", err)
		}
	})
}
