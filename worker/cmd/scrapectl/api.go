package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The HTTP API side of scrapectl: POST /scrape, GET and DELETE /jobs/{id} (functions/README.md).

// DefaultAPIURL is SCRAPE_API_URL's default: the local stack's gateway (make run).
const DefaultAPIURL = "http://127.0.0.1:8080"

// Exit codes of scrape and jobs (documented in usage and worker/README.md).
const (
	exitCompleted   = 0
	exitError       = 1 // anything else: a local error (file, flags' values)
	exitUsage       = 2
	exitFailed      = 3 // the job ended failed
	exitTimeout     = 4 // the job ended timeout
	exitCancelled   = 5 // the job ended cancelled
	exitHTTP        = 6 // the API refused the request or could not be reached
	exitNotFinished = 7 // the job is still queued or running: --wait-for ran out, or Ctrl-C left it running
)

// exitErr carries an exit code with its message.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string { return e.err.Error() }
func (e *exitErr) Unwrap() error { return e.err }

// exitCode is the process's exit code for err.
func exitCode(err error) int {
	var ee *exitErr
	switch {
	case err == nil:
		return exitCompleted
	case errors.Is(err, errUsage):
		return exitUsage
	case errors.As(err, &ee):
		return ee.code
	}
	return exitError
}

// job is the API's job body (a sync answer, GET /jobs/{id}, DELETE /jobs/{id}) as far as scrapectl reads it.
type job struct {
	RequestID     string          `json:"request_id"`
	Status        string          `json:"status"`
	Data          json.RawMessage `json:"data,omitempty"`
	DataURL       string          `json:"data_url,omitempty"`
	Error         json.RawMessage `json:"error,omitempty"`
	ErrorCode     string          `json:"error_code,omitempty"`
	ExecutionTime float64         `json:"execution_time,omitempty"`
	WorkerID      string          `json:"worker_id,omitempty"`
	ScriptVersion string          `json:"script_version,omitempty"`
	Webhook       *struct {
		Status    string `json:"status"`
		Attempts  int    `json:"attempts"`
		LastError string `json:"last_error"`
	} `json:"webhook,omitempty"`
	// raw is the body as the API sent it.
	raw []byte
}

// final reports whether the job has ended.
func (j *job) final() bool {
	switch j.Status {
	case "completed", "failed", "timeout", "cancelled":
		return true
	}
	return false
}

// errorText is the job's error message (a string, or whatever JSON the API sent).
func (j *job) errorText() string {
	var s string
	if json.Unmarshal(j.Error, &s) == nil {
		return s
	}
	return string(j.Error)
}

// outcome turns a job's status into the command's result: nil for completed, an exitErr otherwise.
func (j *job) outcome() error {
	why := func() string {
		if j.ErrorCode == "" && len(j.Error) == 0 {
			return ""
		}
		return fmt.Sprintf(": %s: %s", j.ErrorCode, j.errorText())
	}
	switch j.Status {
	case "completed":
		return nil
	case "failed":
		return &exitErr{exitFailed, fmt.Errorf("job %s failed%s", j.RequestID, why())}
	case "timeout":
		return &exitErr{exitTimeout, fmt.Errorf("job %s timed out%s", j.RequestID, why())}
	case "cancelled":
		return &exitErr{exitCancelled, fmt.Errorf("job %s was cancelled", j.RequestID)}
	}
	return &exitErr{exitNotFinished, fmt.Errorf("job %s is still %s: scrapectl jobs get %s", j.RequestID, j.Status, j.RequestID)}
}

// apiError is an answer other than the expected one: {error, error_code, request_id}.
type apiError struct {
	Status    int    `json:"-"`
	Message   string `json:"error"`
	Code      string `json:"error_code"`
	RequestID string `json:"request_id"`
	// retryAfter is the answer's Retry-After, if any.
	retryAfter time.Duration
	// sigv4: the request was signed (--auth sigv4), not sent with a bearer token.
	sigv4 bool
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("HTTP %d", e.Status)
	if e.Code != "" {
		msg += " " + e.Code
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	if e.RequestID != "" {
		msg += " (request " + e.RequestID + ")"
	}
	switch {
	case e.sigv4 && (e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden):
		msg += "; --auth sigv4 needs credentials of the stack's account allowed execute-api:Invoke on its output ApiIamRoutesArn, and the API's region"
	case e.Status == http.StatusUnauthorized:
		msg += "; set SCRAPE_TOKEN or --token (locally: TOKEN=$(make -s token)), or --auth sigv4 for the IAM routes"
	}
	return msg
}

// retryable reports answers a repeated request may get past: the gateway or its store briefly away.
func (e *apiError) retryable() bool {
	switch e.Status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable:
		return true
	}
	return false
}

// client talks to the HTTP API.
type client struct {
	base  string // without a trailing slash
	token string
	// signer, when set, signs every request (--auth sigv4) instead of the bearer token.
	signer *sigv4Signer
	http   *http.Client
	// sleep waits between retries (tests shorten it); it returns early when ctx ends.
	sleep func(ctx context.Context, d time.Duration) error
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// newIdempotencyKey returns a random key: the same key on every retry of one submission makes the
// gateway answer the job it already has instead of running the script again.
func newIdempotencyKey() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// do sends one request and decodes a job from an answer whose status is in ok.
func (c *client) do(ctx context.Context, method, path string, body []byte, header http.Header, ok ...int) (*job, *http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	switch {
	case c.signer != nil:
		if err := c.signer.sign(ctx, req, body); err != nil {
			return nil, nil, err
		}
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, resp, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	for _, code := range ok {
		if resp.StatusCode == code {
			j := &job{raw: raw}
			if err := json.Unmarshal(raw, j); err != nil || j.RequestID == "" {
				return nil, resp, fmt.Errorf("%s %s: HTTP %d with a body that is not a job: %.200q", method, path, resp.StatusCode, raw)
			}
			return j, resp, nil
		}
	}
	ae := &apiError{Status: resp.StatusCode, sigv4: c.signer != nil}
	if json.Unmarshal(raw, ae) != nil || ae.Message == "" && ae.Code == "" {
		ae.Message = strings.TrimSpace(string(raw[:min(len(raw), 200)]))
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		ae.retryAfter = time.Duration(s) * time.Second
	}
	return nil, resp, ae
}

// submitAttempts bounds the submissions of one scrape; the idempotency key makes them safe.
const submitAttempts = 4

// submit posts the scrape, retrying transport errors and 429/502/503 with the same Idempotency-Key. It
// returns the job and whether the API answered 202 (accepted, not finished).
func (c *client) submit(ctx context.Context, body []byte, key string, async bool, log func(string)) (*job, bool, error) {
	h := http.Header{"Idempotency-Key": {key}}
	if async {
		h.Set("Prefer", "respond-async")
	}
	var last error
	for attempt := 1; attempt <= submitAttempts; attempt++ {
		// The gateway holds a request for its sync window (25 s) at most; a minute is plenty.
		actx, cancel := context.WithTimeout(ctx, time.Minute)
		j, resp, err := c.do(actx, http.MethodPost, "/scrape", body, h, http.StatusOK, http.StatusAccepted)
		cancel()
		if err == nil {
			return j, resp.StatusCode == http.StatusAccepted, nil
		}
		last = err
		var ae *apiError
		wait := time.Duration(1<<(attempt-1)) * time.Second
		switch {
		case ctx.Err() != nil:
			return nil, false, ctx.Err()
		case errors.As(err, &ae) && !ae.retryable():
			return nil, false, &exitErr{exitHTTP, fmt.Errorf("POST /scrape: %w", err)}
		case errors.As(err, &ae) && ae.retryAfter > 0:
			wait = min(ae.retryAfter, 30*time.Second)
		}
		if attempt < submitAttempts {
			log(fmt.Sprintf("POST /scrape: %v; retrying in %s with the same Idempotency-Key", err, wait))
			if err := c.sleep(ctx, wait); err != nil {
				return nil, false, err
			}
		}
	}
	return nil, false, &exitErr{exitHTTP, fmt.Errorf("POST /scrape: %w (%d attempts)", last, submitAttempts)}
}

// jobPath is the job's route.
func jobPath(id string) string { return "/jobs/" + url.PathEscape(id) }

// getJob reads the job; wait > 0 long-polls (the API holds the request up to 20 s or until the job ends).
func (c *client) getJob(ctx context.Context, id string, wait time.Duration) (*job, error) {
	path := jobPath(id)
	if wait > 0 {
		path += "?wait=" + strconv.Itoa(int(wait/time.Second))
	}
	actx, cancel := context.WithTimeout(ctx, wait+30*time.Second)
	defer cancel()
	j, _, err := c.do(actx, http.MethodGet, path, nil, nil, http.StatusOK)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", jobPath(id), err)
	}
	return j, nil
}

// cancelJob asks the API to cancel the job and returns its state afterwards.
func (c *client) cancelJob(ctx context.Context, id string) (*job, error) {
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	j, _, err := c.do(actx, http.MethodDelete, jobPath(id), nil, nil, http.StatusOK)
	if err != nil {
		return nil, &exitErr{exitHTTP, fmt.Errorf("DELETE %s: %w", jobPath(id), err)}
	}
	return j, nil
}

// openResult opens the presigned data_url. It carries no Authorization header: the URL is its own
// credential (and S3 refuses a second one).
func (c *client) openResult(ctx context.Context, dataURL string) (io.ReadCloser, int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, dataURL, nil)
	if err != nil {
		return nil, 0, &exitErr{exitHTTP, fmt.Errorf("data_url: %w", err)}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, &exitErr{exitHTTP, fmt.Errorf("GET data_url: %w", err)}
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		resp.Body.Close()
		return nil, 0, &exitErr{exitHTTP, fmt.Errorf("GET data_url: HTTP %d (a presigned URL lives JOB_RESULT_URL_TTL; GET the job again for a fresh one): %s",
			resp.StatusCode, strings.TrimSpace(string(b)))}
	}
	return resp.Body, resp.ContentLength, nil
}
