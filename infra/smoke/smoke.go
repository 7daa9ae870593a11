// Package smoke checks a deployed stage from the outside, the way its clients use it, and fails the deploy
// when the stage is not healthy:
//
//  1. GET /health without credentials is refused (401): the JWT authorizer is in front of the API.
//  2. GET /iam/health, SigV4-signed with the deployer's AWS credentials, says "healthy" (the gateway
//     Lambda reached the broker).
//  3. POST /iam/scrape (SigV4) runs a real script on a real worker and completes. It asks for an
//     asynchronous answer (Prefer: respond-async): a gateway with jobs answers 202 and a Location, which
//     the check polls (GET /jobs/{id}?wait=N) for as long as workers need to start, instead of racing the
//     25 s sync window; a gateway without jobs answers synchronously. Workers may be scaling up from
//     zero, so 503/504 answers and timed-out scrapes are retried until the deadline.
//  4. With a JWT (minted by cmd/smoke with the client-credentials grant of the stage's Cognito machine
//     client, or SMOKE_JWT from an external issuer): GET /health, POST /scrape and GET /status answer
//     through the JWT authorizer.
package smoke

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Config says what to check.
type Config struct {
	// APIURL is the stage's API base URL (the stack output ApiUrl).
	APIURL string
	Region string
	// JWT is a bearer token for the user routes; empty skips them unless RequireJWT.
	JWT        string
	RequireJWT bool
	// Script and Params are the scrape to run; Params is a JSON object.
	Script string
	Params json.RawMessage
	// Timeout bounds the whole check; Interval is the pause between retries.
	Timeout  time.Duration
	Interval time.Duration
}

// Checker runs the checks.
type Checker struct {
	HTTP        *http.Client
	Credentials aws.CredentialsProvider
	Log         io.Writer
	// Now is the signing clock (time.Now when nil).
	Now func() time.Time
}

// Run performs every check; the first failure ends it.
func (c *Checker) Run(ctx context.Context, cfg Config) error {
	if cfg.RequireJWT && cfg.JWT == "" {
		return errors.New("no JWT for the user routes: the stack has no Cognito machine client to mint one; set SMOKE_JWT to a token from the stage's issuer (or SMOKE_REQUIRE_JWT=0 to check the IAM routes only)")
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	base := strings.TrimRight(cfg.APIURL, "/")

	// 1. The authorizer refuses anonymous callers.
	resp, err := c.do(ctx, http.MethodGet, base+"/health", nil, auth{})
	if err != nil {
		return fmt.Errorf("GET /health without credentials: %w", err)
	}
	if resp.status != http.StatusUnauthorized {
		return fmt.Errorf("GET /health without credentials answered %d, want 401: the JWT authorizer is not in front of the API", resp.status)
	}
	c.logf("ok   GET /health without credentials: 401")

	iam := auth{sigv4: true, region: cfg.Region}
	// 2. Health through IAM, retried while the first execution environments connect.
	if err := c.retry(ctx, cfg, "GET /iam/health", func() (bool, error) {
		r, err := c.do(ctx, http.MethodGet, base+"/iam/health", nil, iam)
		if err != nil {
			return true, err
		}
		var h struct {
			Status     string            `json:"status"`
			Components map[string]string `json:"components"`
		}
		_ = json.Unmarshal(r.body, &h)
		if r.status == http.StatusOK && h.Status == "healthy" {
			c.logf("ok   GET /iam/health: healthy %v", h.Components)
			return false, nil
		}
		return r.status == http.StatusServiceUnavailable || r.status >= 500, fmt.Errorf("answered %d %s", r.status, snippet(r.body))
	}); err != nil {
		return err
	}

	// 3. A real scrape through the IAM route.
	body, err := json.Marshal(map[string]any{"script_name": cfg.Script, "parameters": cfg.Params, "timeout": 20})
	if err != nil {
		return err
	}
	if err := c.scrape(ctx, cfg, "POST /iam/scrape", base+"/iam/scrape", body, iam); err != nil {
		return err
	}

	// 4. The user routes through the JWT authorizer.
	if cfg.JWT == "" {
		c.logf("skip GET /health, POST /scrape and GET /status with a JWT: no SMOKE_JWT")
		return nil
	}
	bearer := auth{bearer: cfg.JWT}
	r, err := c.do(ctx, http.MethodGet, base+"/health", nil, bearer)
	if err != nil {
		return fmt.Errorf("GET /health: %w", err)
	}
	if r.status != http.StatusOK || !strings.Contains(string(r.body), `"healthy"`) {
		return fmt.Errorf("GET /health with the JWT answered %d %s", r.status, snippet(r.body))
	}
	c.logf("ok   GET /health with the JWT: healthy")
	if err := c.scrape(ctx, cfg, "POST /scrape", base+"/scrape", body, bearer); err != nil {
		return err
	}
	r, err = c.do(ctx, http.MethodGet, base+"/status", nil, bearer)
	if err != nil {
		return fmt.Errorf("GET /status: %w", err)
	}
	if r.status != http.StatusOK {
		return fmt.Errorf("GET /status with the JWT answered %d %s", r.status, snippet(r.body))
	}
	c.logf("ok   GET /status: %s", snippet(r.body))
	return nil
}

// scrape posts body until it completes; 503/504 (broker reconnecting, workers scaling up) and 429 (queue
// full) are retried, anything else ends the check.
func (c *Checker) scrape(ctx context.Context, cfg Config, what, url string, body []byte, a auth) error {
	return c.retry(ctx, cfg, what, func() (bool, error) {
		r, err := c.do(ctx, http.MethodPost, url, body, a, "Prefer", "respond-async")
		if err != nil {
			return true, err
		}
		if r.status == http.StatusAccepted {
			if r, err = c.awaitJob(ctx, url, r, a, cfg.Interval); err != nil {
				return true, err
			}
		}
		var reply struct {
			Status    string `json:"status"`
			ErrorCode string `json:"error_code"`
			Error     any    `json:"error"`
			WorkerID  string `json:"worker_id"`
		}
		_ = json.Unmarshal(r.body, &reply)
		switch {
		case r.status == http.StatusOK && reply.Status == "completed":
			c.logf("ok   %s: completed by %s", what, reply.WorkerID)
			return false, nil
		case r.status == http.StatusServiceUnavailable || r.status == http.StatusGatewayTimeout || r.status == http.StatusTooManyRequests:
			return true, fmt.Errorf("answered %d (broker or workers not ready yet, or the queue is full)", r.status)
		case r.status == http.StatusOK && reply.Status == "timeout":
			return true, fmt.Errorf("the script timed out: %v", reply.Error)
		default:
			return false, fmt.Errorf("answered %d %s", r.status, snippet(r.body))
		}
	})
}

// JobWaitSeconds is the long-poll of GET /jobs/{id}?wait=N: under API Gateway's 30 s.
const JobWaitSeconds = 20

// awaitJob follows a 202's Location (GET /jobs/{id}, under the same prefix as the POST) until the job
// is no longer queued or running, and returns that answer.
func (c *Checker) awaitJob(ctx context.Context, postURL string, accepted response, a auth, interval time.Duration) (response, error) {
	loc := accepted.location
	if loc == "" {
		var j struct {
			RequestID string `json:"request_id"`
		}
		if json.Unmarshal(accepted.body, &j) != nil || j.RequestID == "" {
			return response{}, fmt.Errorf("202 without a Location or request_id: %s", snippet(accepted.body))
		}
		loc = "/jobs/" + j.RequestID
	}
	// postURL is <base>[/iam]/scrape; the job lives at <base>[/iam]/jobs/{id}.
	prefix := strings.TrimSuffix(postURL, "/scrape")
	jobURL := prefix + loc
	if strings.HasPrefix(loc, "http://") || strings.HasPrefix(loc, "https://") {
		jobURL = loc
	}
	jobURL += fmt.Sprintf("?wait=%d", JobWaitSeconds)
	for {
		r, err := c.do(ctx, http.MethodGet, jobURL, nil, a)
		if err != nil {
			return response{}, err
		}
		var j struct {
			Status string `json:"status"`
		}
		_ = json.Unmarshal(r.body, &j)
		if r.status != http.StatusOK || (j.Status != "queued" && j.Status != "running") {
			return r, nil
		}
		c.logf("wait job %s: %s", loc, j.Status)
		// The long poll normally waits on the server; the pause guards against one that answers at once.
		select {
		case <-ctx.Done():
			return response{}, ctx.Err()
		case <-time.After(interval):
		}
	}
}

// retry calls f until it succeeds, returns a permanent error, or ctx ends.
func (c *Checker) retry(ctx context.Context, cfg Config, what string, f func() (retry bool, err error)) error {
	for attempt := 1; ; attempt++ {
		again, err := f()
		if err == nil {
			return nil
		}
		if !again {
			return fmt.Errorf("%s: %w", what, err)
		}
		c.logf("wait %s (attempt %d): %v", what, attempt, err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not healthy within %s; last: %w", what, cfg.Timeout, err)
		case <-time.After(cfg.Interval):
		}
	}
}

type auth struct {
	sigv4  bool
	region string
	bearer string
}

type response struct {
	status int
	body   []byte
	// location is the Location header (a 202's job).
	location string
}

// do sends one request; headers are name, value pairs (signed with the rest under SigV4).
func (c *Checker) do(ctx context.Context, method, url string, body []byte, a auth, headers ...string) (response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return response{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	switch {
	case a.bearer != "":
		req.Header.Set("Authorization", "Bearer "+a.bearer)
	case a.sigv4:
		if err := c.sign(ctx, req, body, a.region); err != nil {
			return response{}, err
		}
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return response{status: resp.StatusCode, body: b, location: resp.Header.Get("Location")}, err
}

// sign adds a SigV4 signature for API Gateway (service execute-api).
func (c *Checker) sign(ctx context.Context, req *http.Request, body []byte, region string) error {
	creds, err := c.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("AWS credentials for SigV4: %w", err)
	}
	sum := sha256.Sum256(body)
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	return v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "execute-api", region, now())
}

func (c *Checker) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, format+"\n", args...)
	}
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
