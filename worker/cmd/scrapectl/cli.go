package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/scrapeplatform/platform/shared/config"
	"github.com/scrapeplatform/platform/shared/s3client"
	"github.com/scrapeplatform/platform/worker/internal/repository"
)

// errUsage marks command-line mistakes (exit code 2).
var errUsage = errors.New("usage")

const usage = `usage:
  scrapectl scripts push [flags] DIR    check a script folder, bundle it, upload it; prints the new version
  scrapectl scripts check [flags] DIR   check a script folder without uploading it
  scrapectl scripts list [flags]        list the published scripts and their versions
  scrapectl scrape NAME [flags]         run a script through the API, wait for it, print (or --out) its result
  scrapectl jobs get ID [--out FILE]    show a job (with --out: write a completed job's result)
  scrapectl jobs cancel ID              cancel a job

scrape and jobs talk to the HTTP API at SCRAPE_API_URL (default http://127.0.0.1:8080) with the bearer
token SCRAPE_TOKEN, or with --auth sigv4 (SCRAPE_AUTH=sigv4) at its IAM routes (<api-url>/iam), each request
signed with the AWS default credentials (region: --region, an execute-api URL's, or AWS_REGION). scrape submits with a generated Idempotency-Key (a retried submission never runs the
script twice), shows the job's status while it waits (queued, running, elapsed), follows data_url for
large results, and on Ctrl-C asks whether to cancel the job (without a terminal it leaves the job running
and prints its id). Exit codes: 0 completed, 1 local error, 2 usage, 3 failed, 4 timeout, 5 cancelled,
6 HTTP error (refused or unreachable API), 7 not finished (--wait-for ran out, or left running on Ctrl-C).

The S3 repository comes from the worker's variables: S3_BUCKET_NAME, S3_PREFIX (default scripts/),
S3_REGION, S3_ENDPOINT_URL, and S3_ACCESS_KEY/S3_SECRET_KEY (without them, the AWS default credential
chain). Bundle limits: SCRIPT_MAX_SIZE_MB (64), SCRIPT_MAX_FILES (1000).

flags:
`

// options are the settings of one command.
type options struct {
	s3       repository.S3Config
	limits   repository.Limits
	name     string
	dryRun   bool
	progress string
}

// run executes the command line args; it is main without the process (no terminal, no interrupts).
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runTerminal(ctx, args, getenv, &terminal{stdin: strings.NewReader(""), stdout: stdout, stderr: stderr})
}

// runTerminal executes the command line args with t's streams and interrupts.
func runTerminal(ctx context.Context, args []string, getenv func(string) string, t *terminal) error {
	stdout, stderr := t.stdout, t.stderr
	if len(args) >= 1 && (args[0] == "scrape" || args[0] == "jobs") {
		return runAPI(ctx, args, getenv, t)
	}
	// The scripts commands stop on the first interrupt.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-t.interrupts:
			cancel()
		case <-ctx.Done():
		}
	}()
	o, fs := newFlags(getenv, stderr)
	if len(args) < 2 || args[0] != "scripts" {
		fs.Usage()
		return fmt.Errorf("%w: expected `scripts push|check|list`, `scrape NAME` or `jobs get|cancel ID`", errUsage)
	}
	verb := args[1]
	positional, err := parseInterspersed(fs, args[2:])
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	switch verb {
	case "push", "check":
		if len(positional) != 1 {
			return fmt.Errorf("%w: scripts %s takes one folder, got %d arguments", errUsage, verb, len(positional))
		}
		if verb == "check" {
			o.dryRun = true
		}
		return push(ctx, o, positional[0], stdout, stderr)
	case "list":
		if len(positional) != 0 {
			return fmt.Errorf("%w: scripts list takes no arguments", errUsage)
		}
		return list(ctx, o, stdout, stderr)
	}
	fs.Usage()
	return fmt.Errorf("%w: unknown command %q", errUsage, verb)
}

// runAPI runs `scrape NAME` and `jobs get|cancel ID`.
func runAPI(ctx context.Context, args []string, getenv func(string) string, t *terminal) error {
	cmd := args[0]
	o, fs := newAPIFlags(getenv, t.stderr, cmd)
	if cmd == "jobs" {
		if len(args) < 2 || args[1] != "get" && args[1] != "cancel" {
			fs.Usage()
			return fmt.Errorf("%w: expected `jobs get ID` or `jobs cancel ID`", errUsage)
		}
		positional, err := parseInterspersed(fs, args[2:])
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if len(positional) != 1 || positional[0] == "" {
			return fmt.Errorf("%w: jobs %s takes one job id", errUsage, args[1])
		}
		return runJobs(ctx, t, o, args[1], positional[0])
	}
	positional, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if len(positional) != 1 {
		return fmt.Errorf("%w: scrape takes one script name, got %d arguments", errUsage, len(positional))
	}
	return runScrape(ctx, t, o, positional[0])
}

func newFlags(getenv func(string) string, stderr io.Writer) (*options, *flag.FlagSet) {
	env := config.NewEnv(getenv)
	o := &options{
		s3: repository.S3Config{
			AccessKey: env.String("S3_ACCESS_KEY", ""),
			SecretKey: env.String("S3_SECRET_KEY", ""),
		},
	}
	fs := flag.NewFlagSet("scrapectl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&o.s3.Bucket, "bucket", env.String("S3_BUCKET_NAME", ""), "bucket (S3_BUCKET_NAME)")
	fs.StringVar(&o.s3.Prefix, "prefix", env.String("S3_PREFIX", repository.DefaultS3Prefix), "key prefix of the bundles (S3_PREFIX)")
	fs.StringVar(&o.s3.Region, "region", env.String("S3_REGION", ""), "region (S3_REGION; default: the AWS configuration)")
	fs.StringVar(&o.s3.Endpoint, "endpoint-url", env.String("S3_ENDPOINT_URL", ""), "S3-compatible endpoint, path-style (S3_ENDPOINT_URL)")
	fs.StringVar(&o.name, "name", "", "push/check: script name (default: the folder's name)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "push: check and bundle, but do not upload")
	fs.StringVar(&o.progress, "progress", "auto", "push: progress bar: auto (on a terminal), always, never")
	o.limits = repository.Limits{
		MaxBytes: int64(env.Int("SCRIPT_MAX_SIZE_MB", int(repository.DefaultLimits.MaxBytes>>20), 1, 4096)) << 20,
		MaxFiles: env.Int("SCRIPT_MAX_FILES", repository.DefaultLimits.MaxFiles, 1, 100_000),
	}
	if err := env.Err(); err != nil {
		fmt.Fprintln(stderr, "scrapectl: ignoring invalid limits:", err)
	}
	return o, fs
}

// parseInterspersed parses flags wherever they appear (`push DIR --dry-run` as well as `push --dry-run
// DIR`) and returns the other arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

func (o *options) checkS3() error {
	var problems []string
	if o.s3.Bucket == "" {
		problems = append(problems, "no bucket: set S3_BUCKET_NAME or --bucket")
	}
	if (o.s3.AccessKey == "") != (o.s3.SecretKey == "") {
		problems = append(problems, "set both S3_ACCESS_KEY and S3_SECRET_KEY, or neither")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", errUsage, strings.Join(problems, "; "))
	}
	o.s3.Prefix = s3client.NormalizePrefix(o.s3.Prefix)
	return nil
}
