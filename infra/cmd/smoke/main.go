// Command smoke checks a deployed stage (see package smoke) and exits non-zero when it is not healthy.
// `make deploy` runs it after `cdk deploy`; `make smoke STAGE=dev` runs it alone.
//
//	smoke -outputs dist/outputs-dev.json -stack ScrapingPlatform-dev
//	smoke -outputs dist/outputs-dev.json -stack ScrapingPlatform-dev -print ScriptsBucketName
//
//	smoke -outputs dist/outputs-dev.json -stack ScrapingPlatform-dev -token
//
// The outputs file is what `cdk deploy --outputs-file` writes. Without SMOKE_JWT the check mints its token
// with the client-credentials grant of the stage's Cognito machine client (outputs TokenUrl,
// MachineClientId, UserPoolId; the secret is read with cognito-idp:DescribeUserPoolClient); -token prints
// such a token and exits (make token STAGE=dev). Settings come from the environment:
// SMOKE_JWT (a token from an external issuer), SMOKE_REQUIRE_JWT (default 1), SMOKE_SCRIPT (default
// example_scraper), SMOKE_PARAMS (default {"url":"https://example.com/"}), SMOKE_TIMEOUT (default 10m,
// long enough for a stage whose workers scale up from zero), SMOKE_INTERVAL (default 15s). AWS
// credentials (for SigV4) come from the default chain, as for the deploy.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cognitoidentityprovider"

	"github.com/scrapeplatform/platform/infra/smoke"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "smoke: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("smoke", flag.ContinueOnError)
	outputsFile := fs.String("outputs", "", "outputs file written by `cdk deploy --outputs-file` (required)")
	stack := fs.String("stack", "", "stack name, e.g. ScrapingPlatform-dev (required)")
	print := fs.String("print", "", "print this stack output and exit")
	printToken := fs.Bool("token", false, "print an access token of the stage's machine client and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *outputsFile == "" || *stack == "" {
		return errors.New("-outputs and -stack are required")
	}
	outputs, err := readOutputs(*outputsFile, *stack)
	if err != nil {
		return err
	}
	if *print != "" {
		v, ok := outputs[*print]
		if !ok {
			return fmt.Errorf("stack %s has no output %q", *stack, *print)
		}
		fmt.Fprintln(stdout, v)
		return nil
	}

	cfg, err := smoke.LoadConfig(getenv)
	if err != nil {
		return err
	}
	cfg.APIURL, cfg.Region = outputs["ApiUrl"], outputs["Region"]
	if cfg.APIURL == "" || cfg.Region == "" {
		return fmt.Errorf("stack %s's outputs lack ApiUrl or Region", *stack)
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(cfg.Region))
	if err != nil {
		return fmt.Errorf("AWS configuration: %w", err)
	}
	hc := &http.Client{Timeout: 40 * time.Second}
	if *printToken || cfg.JWT == "" && outputs["TokenUrl"] != "" {
		tok, err := machineToken(ctx, awsCfg, hc, outputs)
		if err != nil {
			return err
		}
		if *printToken {
			fmt.Fprintln(stdout, tok)
			return nil
		}
		cfg.JWT = tok
	}
	fmt.Fprintf(stdout, "smoke-checking %s at %s\n", *stack, cfg.APIURL)
	c := &smoke.Checker{HTTP: hc, Credentials: awsCfg.Credentials, Log: stdout}
	if err := c.Run(ctx, cfg); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s is healthy\n", *stack)
	return nil
}

// machineToken mints a token of the stage's Cognito machine client; the deployer's credentials read the
// client's secret (cognito-idp:DescribeUserPoolClient).
func machineToken(ctx context.Context, awsCfg aws.Config, hc *http.Client, outputs map[string]string) (string, error) {
	pool, client, tokenURL := outputs["UserPoolId"], outputs["MachineClientId"], outputs["TokenUrl"]
	if pool == "" || client == "" || tokenURL == "" {
		return "", errors.New("the stack has no Cognito machine client (outputs UserPoolId, MachineClientId, TokenUrl): with an external issuer, set SMOKE_JWT")
	}
	out, err := cognitoidentityprovider.NewFromConfig(awsCfg).DescribeUserPoolClient(ctx, &cognitoidentityprovider.DescribeUserPoolClientInput{
		UserPoolId: aws.String(pool), ClientId: aws.String(client),
	})
	if err != nil {
		return "", fmt.Errorf("read the machine client's secret: %w", err)
	}
	m := smoke.MachineClient{TokenURL: tokenURL, ClientID: client, ClientSecret: aws.ToString(out.UserPoolClient.ClientSecret), Scopes: strings.Fields(outputs["JwtScopes"])}
	return m.Token(ctx, hc)
}

// readOutputs returns one stack's outputs from a `cdk deploy --outputs-file` file.
func readOutputs(path, stack string) (map[string]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("stack outputs: %w (run `make deploy` first, which writes them)", err)
	}
	var all map[string]map[string]string
	if err := json.Unmarshal(raw, &all); err != nil {
		return nil, fmt.Errorf("stack outputs %s: %w", path, err)
	}
	outputs, ok := all[stack]
	if !ok {
		return nil, fmt.Errorf("%s has no outputs of stack %s", path, stack)
	}
	return outputs, nil
}
