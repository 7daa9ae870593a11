package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/scrapeplatform/platform/shared/config"
)

// terminal holds what the scrape and jobs commands need beyond arguments: the streams, whether a person
// is at a terminal, and the interrupts (Ctrl-C) main forwards. Tests inject all of them.
type terminal struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// interactive: stdin and stderr are terminals, so Ctrl-C may ask before cancelling.
	interactive bool
	// interrupts delivers Ctrl-C (SIGINT) and SIGTERM; nil never does.
	interrupts <-chan os.Signal
	// httpClient is the API's and data_url's client (nil: a default one).
	httpClient *http.Client
	// retryDelay scales the waits between retries (tests: 0).
	noRetryDelay bool
	// awsCredentials signs --auth sigv4 requests (nil: the AWS default credential chain).
	awsCredentials aws.CredentialsProvider
}

// apiOptions are the scrape and jobs commands' settings.
type apiOptions struct {
	url, token     string
	auth, region   string
	params         string
	async          bool
	timeout        float64
	waitFor        time.Duration
	out            string
	progress       string
	idempotencyKey string
}

func newAPIFlags(getenv func(string) string, stderr io.Writer, name string) (*apiOptions, *flag.FlagSet) {
	env := config.NewEnv(getenv)
	o := &apiOptions{}
	fs := flag.NewFlagSet("scrapectl "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	fs.StringVar(&o.url, "api-url", env.String("SCRAPE_API_URL", DefaultAPIURL), "base URL of the HTTP API (SCRAPE_API_URL)")
	fs.StringVar(&o.token, "token", env.String("SCRAPE_TOKEN", ""), "bearer token (SCRAPE_TOKEN; locally: make -s token)")
	fs.StringVar(&o.auth, "auth", env.String("SCRAPE_AUTH", authBearer), "how requests are authorized (SCRAPE_AUTH): bearer (the token), or sigv4 (the IAM routes under <api-url>/iam, requests signed with the AWS default credentials)")
	fs.StringVar(&o.region, "region", "", "--auth sigv4: the API's region (default: from an execute-api URL, else AWS_REGION or the profile's)")
	fs.StringVar(&o.out, "out", "", "scrape, jobs get: write the result (the script's value, JSON) to this file instead of stdout")
	if name == "scrape" {
		fs.StringVar(&o.params, "params", "{}", "scrape: the script's parameters, a JSON object")
		fs.BoolVar(&o.async, "async", false, "scrape: submit with Prefer: respond-async and print the job id without waiting")
		fs.Float64Var(&o.timeout, "timeout", 0, "scrape: the script's timeout in seconds (default: the API's)")
		fs.Var((*seconds)(&o.waitFor), "wait-for", "scrape: give up waiting after this many seconds (or a duration such as 10m), leaving the job running (default: until it ends)")
		fs.StringVar(&o.progress, "progress", "auto", "scrape: live status line: auto (on a terminal), always, never")
		fs.StringVar(&o.idempotencyKey, "idempotency-key", "", "scrape: the submission's Idempotency-Key (default: a random one, reused on retries)")
	}
	return o, fs
}

func (o *apiOptions) client(ctx context.Context, t *terminal) (*client, error) {
	u := strings.TrimRight(o.url, "/")
	parsed, err := url.Parse(u)
	if err != nil || parsed.Scheme != "http" && parsed.Scheme != "https" || parsed.Host == "" {
		return nil, fmt.Errorf("%w: --api-url/SCRAPE_API_URL %q is not an http(s) URL", errUsage, o.url)
	}
	var signer *sigv4Signer
	switch o.auth {
	case authBearer:
	case authSigV4:
		if signer, err = newSigV4(ctx, parsed, o.region, t.awsCredentials); err != nil {
			return nil, err
		}
		u = iamBase(u)
	default:
		return nil, fmt.Errorf("%w: --auth/SCRAPE_AUTH must be %s or %s, not %q", errUsage, authBearer, authSigV4, o.auth)
	}
	hc := t.httpClient
	if hc == nil {
		hc = &http.Client{}
	}
	c := &client{base: u, token: o.token, signer: signer, http: hc, sleep: sleepCtx}
	if t.noRetryDelay {
		c.sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	}
	return c, nil
}

// runScrape is `scrapectl scrape NAME`.
func runScrape(ctx context.Context, t *terminal, o *apiOptions, name string) error {
	var params map[string]any
	if err := json.Unmarshal([]byte(o.params), &params); err != nil || params == nil {
		return fmt.Errorf("%w: --params must be a JSON object, e.g. '{\"url\": \"https://example.com\"}'", errUsage)
	}
	if o.timeout < 0 {
		return fmt.Errorf("%w: --timeout must be positive seconds", errUsage)
	}
	if o.async && o.out != "" {
		return fmt.Errorf("%w: --out needs the result: not with --async (use scrapectl jobs get ID --out FILE later)", errUsage)
	}
	c, err := o.client(ctx, t)
	if err != nil {
		return err
	}
	req := map[string]any{"script_name": name, "parameters": json.RawMessage(o.params)}
	if o.timeout > 0 {
		req["timeout"] = o.timeout
	}
	body, _ := json.Marshal(req)
	key := o.idempotencyKey
	if key == "" {
		key = newIdempotencyKey()
	}
	line := newStatusLine(t.stderr, o.progress)
	start := time.Now()
	line.show("submitting "+name, 0)
	// Ctrl-C while the submission is in flight stops it; the key then finds the job if it was accepted.
	var gotInterrupt atomic.Bool
	subCtx, cancelSub := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		select {
		case <-t.interrupts:
			gotInterrupt.Store(true)
			cancelSub()
		case <-subCtx.Done():
		}
	}()
	j, accepted, err := c.submit(subCtx, body, key, o.async, func(msg string) { line.note(msg) })
	cancelSub()
	<-watched
	if err != nil {
		line.done()
		if gotInterrupt.Load() {
			return &exitErr{exitNotFinished, fmt.Errorf("interrupted before the API answered: the scrape may have been accepted; "+
				"submit it again with --idempotency-key %s to get that job rather than a new one", key)}
		}
		return err
	}
	if !accepted {
		line.done()
		return finish(ctx, t, c, o, j)
	}
	if gotInterrupt.Load() && !o.async {
		// The interrupt came as the API accepted the job: handle it as one during the wait.
		line.done()
		if j, err = interrupted(ctx, t, c, j.RequestID, j); err != nil {
			return err
		}
		return finish(ctx, t, c, o, j)
	}
	if o.async {
		line.done()
		fmt.Fprintf(t.stderr, "job %s %s; scrapectl jobs get %s (or jobs cancel)\n", j.RequestID, j.Status, j.RequestID)
		fmt.Fprintln(t.stdout, j.RequestID)
		return nil
	}
	j, err = wait(ctx, t, c, o, j, line, start)
	line.done()
	if err != nil {
		return err
	}
	return finish(ctx, t, c, o, j)
}

// wait polls the job (long polls of 20 s) until it ends, drawing the status line, and handles Ctrl-C.
func wait(ctx context.Context, t *terminal, c *client, o *apiOptions, j *job, line *statusLine, start time.Time) (*job, error) {
	id := j.RequestID
	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	updates := make(chan *job)
	failed := make(chan error, 1)
	go func() {
		errorsInARow := 0
		for {
			next, err := c.getJob(pollCtx, id, 20*time.Second)
			if pollCtx.Err() != nil {
				return
			}
			if err != nil {
				var ae *apiError
				if errors.As(err, &ae) && !ae.retryable() || errorsInARow >= 5 {
					failed <- &exitErr{exitHTTP, err}
					return
				}
				errorsInARow++
				line.note(fmt.Sprintf("%v; retrying", err))
				if c.sleep(pollCtx, time.Duration(errorsInARow)*time.Second) != nil {
					return
				}
				continue
			}
			errorsInARow = 0
			select {
			case updates <- next:
			case <-pollCtx.Done():
				return
			}
			if next.final() {
				return
			}
		}
	}()
	var deadline <-chan time.Time
	if o.waitFor > 0 {
		timer := time.NewTimer(o.waitFor - time.Since(start))
		defer timer.Stop()
		deadline = timer.C
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	line.show(statusText(j), time.Since(start))
	for {
		select {
		case next := <-updates:
			j = next
			line.show(statusText(j), time.Since(start))
			if j.final() {
				return j, nil
			}
		case err := <-failed:
			return nil, err
		case <-tick.C:
			line.redraw(time.Since(start))
		case <-deadline:
			stopPolling()
			line.done()
			return nil, &exitErr{exitNotFinished, fmt.Errorf("job %s still %s after --wait-for %s; it goes on: scrapectl jobs get %s, or jobs cancel %s", id, j.Status, o.waitFor, id, id)}
		case <-t.interrupts:
			stopPolling()
			line.done()
			return interrupted(ctx, t, c, id, j)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// interrupted handles Ctrl-C while waiting: at a terminal it asks whether to cancel the job; otherwise
// (or on "no") the job goes on and its id is printed.
func interrupted(ctx context.Context, t *terminal, c *client, id string, j *job) (*job, error) {
	leave := &exitErr{exitNotFinished, fmt.Errorf("job %s left %s; scrapectl jobs get %s (or jobs cancel %s)", id, j.Status, id, id)}
	if !t.interactive {
		fmt.Fprintln(t.stdout, id)
		return nil, leave
	}
	fmt.Fprintf(t.stderr, "cancel job %s? [y/N] ", id)
	answer := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(t.stdin).ReadString('\n')
		answer <- strings.ToLower(strings.TrimSpace(s))
	}()
	select {
	case a := <-answer:
		if a != "y" && a != "yes" {
			fmt.Fprintln(t.stdout, id)
			return nil, leave
		}
	case <-t.interrupts: // a second Ctrl-C: leave it
		fmt.Fprintln(t.stderr)
		fmt.Fprintln(t.stdout, id)
		return nil, leave
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	cj, err := c.cancelJob(ctx, id)
	if err != nil {
		return nil, err
	}
	if cj.Status != "cancelled" {
		fmt.Fprintf(t.stderr, "job %s had already ended: %s\n", id, cj.Status)
	}
	return cj, nil
}

func statusText(j *job) string {
	return fmt.Sprintf("job %s %s", j.RequestID, j.Status)
}

// finish reports an ended job: the result of a completed one (stdout or --out), the error of the others.
func finish(ctx context.Context, t *terminal, c *client, o *apiOptions, j *job) error {
	if err := j.outcome(); err != nil {
		return err
	}
	if err := writeResult(ctx, t, c, o.out, j); err != nil {
		return err
	}
	summary := fmt.Sprintf("job %s completed", j.RequestID)
	if j.ExecutionTime > 0 {
		summary += fmt.Sprintf(" in %.2fs", j.ExecutionTime)
	}
	if j.WorkerID != "" {
		summary += " on " + j.WorkerID
	}
	if j.ScriptVersion != "" {
		summary += " (script version " + j.ScriptVersion + ")"
	}
	if o.out != "" {
		summary += ", result in " + o.out
	}
	fmt.Fprintln(t.stderr, summary)
	return nil
}

// writeResult writes the script's value, inline data or the data_url's content (streamed), to out, or
// to stdout when out is "". A file is written beside its final name and renamed when complete.
func writeResult(ctx context.Context, t *terminal, c *client, out string, j *job) error {
	var src io.Reader
	switch {
	case j.DataURL != "":
		body, _, err := c.openResult(ctx, j.DataURL)
		if err != nil {
			return err
		}
		defer body.Close()
		src = body
	case len(j.Data) > 0:
		src = bytes.NewReader(j.Data)
	default:
		src = strings.NewReader("null")
	}
	if out == "" {
		if _, err := io.Copy(t.stdout, src); err != nil {
			return &exitErr{exitHTTP, fmt.Errorf("reading the result: %w", err)}
		}
		fmt.Fprintln(t.stdout)
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".part-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, src)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return &exitErr{exitHTTP, fmt.Errorf("writing the result to %s after %d bytes: %w", out, n, err)}
	}
	return os.Rename(tmp.Name(), out)
}

// runJobs is `scrapectl jobs get|cancel ID`.
func runJobs(ctx context.Context, t *terminal, o *apiOptions, verb, id string) error {
	c, err := o.client(ctx, t)
	if err != nil {
		return err
	}
	var j *job
	switch verb {
	case "get":
		j, err = c.getJob(ctx, id, 0)
		if err != nil {
			err = &exitErr{exitHTTP, err}
		}
	case "cancel":
		if o.out != "" {
			return fmt.Errorf("%w: --out is for jobs get", errUsage)
		}
		j, err = c.cancelJob(ctx, id)
	}
	if err != nil {
		return err
	}
	if o.out != "" && j.Status == "completed" {
		return finish(ctx, t, c, o, j)
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, j.raw, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(j.raw)
	}
	fmt.Fprintln(t.stdout, pretty.String())
	return j.outcome()
}

// seconds is a flag value in seconds ("90", "1.5") or a Go duration ("10m").
type seconds time.Duration

func (s *seconds) String() string { return time.Duration(*s).String() }

func (s *seconds) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 {
		*s = seconds(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return fmt.Errorf("%q is not a number of seconds or a duration such as 10m", v)
	}
	*s = seconds(d)
	return nil
}
