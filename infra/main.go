// Command infra is the CDK app of the scraping platform. The CDK CLI runs it (cdk.json: "cd infra && go
// run ."); the stage comes from the context: `cdk synth -c stage=dev`, or `-c stage=all` for every stage.
// Stage settings live in cdk.json's "stages" context (see package stage and infra/README.md).
//
// Artifacts default to the repository's build output (make lambda, make lambda-queuedepth, make
// lambda-brokerusers); the context keys gatewayCode, queueDepthCode, brokerUsersCode and repoRoot override them (paths relative to the repository root; the
// tests point them at their own builds).
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/scrapeplatform/platform/infra/platform"
	"github.com/scrapeplatform/platform/infra/stage"
)

func main() {
	code := run()
	// Close stops the jsii kernel and removes the runtime it unpacked into $TMPDIR/jsii-runtime.*; it must
	// run on every path, so main leaves only through here (a deferred Close would be skipped by os.Exit).
	jsii.Close()
	os.Exit(code)
}

// run synthesizes the selected stages and returns the exit code.
func run() int {
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintf(os.Stderr, "infra: %v\n", err)
		return 1
	}
	// The CLI runs this program in infra/ (cdk.json: "cd infra && go run .") but names its files
	// (CDK_OUTDIR, CDK_ERROR_FILE, CDK_PERF_COUNTERS_FILE) relative to the repository root, where it reads
	// them back: work from there, or the CLI would read a stale assembly.
	if err := os.Chdir(root); err != nil {
		fmt.Fprintf(os.Stderr, "infra: %v\n", err)
		return 1
	}
	app := awscdk.NewApp(nil)
	if err := build(app, root); err != nil {
		fmt.Fprintf(os.Stderr, "infra: %v\n", err)
		return 1
	}
	app.Synth(nil)
	return 0
}

// build adds the selected stages' stacks and the cdk-nag checks to app; root is the repository.
func build(app awscdk.App, root string) error {
	all, err := stage.Parse(app.Node().TryGetContext(jsii.String("stages")))
	if err != nil {
		return err
	}
	name, _ := app.Node().TryGetContext(jsii.String("stage")).(string)
	if name == "" {
		return fmt.Errorf("no stage selected: pass -c stage=<name> (or all)")
	}
	selected, err := stage.Select(all, name)
	if err != nil {
		return err
	}
	path := func(key, def string) string {
		if v, ok := app.Node().TryGetContext(jsii.String(key)).(string); ok && v != "" {
			return v
		}
		return def
	}
	art := platform.Artifacts{
		GatewayCode:     path("gatewayCode", filepath.Join(root, "dist", "gateway")),
		QueueDepthCode:  path("queueDepthCode", filepath.Join(root, "dist", "queuedepth")),
		BrokerUsersCode: path("brokerUsersCode", filepath.Join(root, "dist", "brokerusers")),
		RepoRoot:        path("repoRoot", root),
	}
	for _, s := range selected {
		if _, err := platform.New(app, s, art); err != nil {
			return err
		}
	}
	platform.Check(app)
	return nil
}
