package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// iamRoutes is the fake API's stand-in for API Gateway's AWS_IAM authorization: the routes live under
// /iam, and a request passes only with a Signature Version 4 that verifySigV4 (written from AWS's
// specification, not with the SDK that signs) computes too.
type iamRoutes struct {
	keyID, secret, region string
	// Recorded by admit (the fake API holds its lock).
	signed  int
	headers [][]string // each signed request's SignedHeaders
	tokens  []string   // each request's X-Amz-Security-Token
	bearer  int        // requests that carried a bearer token as well
}

// admit verifies r and strips /iam from its path; otherwise it answers as API Gateway does and returns false.
func (a *iamRoutes) admit(w http.ResponseWriter, r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, iamPrefix+"/") {
		writeJSON(w, http.StatusForbidden, map[string]string{"message": "Missing Authentication Token"})
		return false
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	signedHeaders, err := verifySigV4(r, body, a.keyID, a.secret, a.region, time.Now())
	if err != nil {
		writeJSON(w, http.StatusForbidden, map[string]string{"message": err.Error()})
		return false
	}
	a.signed++
	a.headers = append(a.headers, signedHeaders)
	a.tokens = append(a.tokens, r.Header.Get("X-Amz-Security-Token"))
	if strings.Contains(r.Header.Get("Authorization"), "Bearer") {
		a.bearer++
	}
	r.URL.Path = strings.TrimPrefix(r.URL.Path, iamPrefix)
	return true
}

// verifySigV4 checks r's Authorization header (AWS4-HMAC-SHA256) against the canonical request of r and
// body, for service execute-api: the credential scope, a date within 5 minutes of now, and the signature
// derived from secret. It returns the signed headers.
func verifySigV4(r *http.Request, body []byte, keyID, secret, region string, now time.Time) ([]string, error) {
	const algorithm = "AWS4-HMAC-SHA256"
	authz, ok := strings.CutPrefix(r.Header.Get("Authorization"), algorithm+" ")
	if !ok {
		return nil, errors.New("Missing Authentication Token")
	}
	fields := map[string]string{}
	for part := range strings.SplitSeq(authz, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		fields[k] = v
	}
	amzDate := r.Header.Get("X-Amz-Date")
	at, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil || at.Sub(now).Abs() > 5*time.Minute {
		return nil, fmt.Errorf("Signature expired or X-Amz-Date %q missing", amzDate)
	}
	day := amzDate[:8]
	scope := day + "/" + region + "/execute-api/aws4_request"
	if fields["Credential"] != keyID+"/"+scope {
		return nil, fmt.Errorf("Credential %q: want the key %s and the scope %s", fields["Credential"], keyID, scope)
	}
	signed := strings.Split(fields["SignedHeaders"], ";")
	for _, must := range []string{"host", "x-amz-date"} {
		if !slices.Contains(signed, must) {
			return nil, fmt.Errorf("SignedHeaders %q lacks %s", fields["SignedHeaders"], must)
		}
	}
	if r.Header.Get("X-Amz-Security-Token") != "" && !slices.Contains(signed, "x-amz-security-token") {
		return nil, errors.New("the security token is not signed")
	}
	var headers strings.Builder
	for _, name := range signed {
		var values []string
		switch name {
		case "host":
			values = []string{r.Host}
		case "content-length":
			values = []string{strconv.FormatInt(r.ContentLength, 10)}
		default:
			values = r.Header.Values(name)
		}
		for i, v := range values {
			values[i] = strings.Join(strings.Fields(v), " ")
		}
		fmt.Fprintf(&headers, "%s:%s\n", name, strings.Join(values, ","))
	}
	// The query: keys and values percent-encoded (RFC 3986), sorted by key, then value.
	var query []string
	for k, vs := range r.URL.Query() {
		for _, v := range vs {
			query = append(query, rfc3986(k)+"="+rfc3986(v))
		}
	}
	sort.Strings(query)
	payload := sha256.Sum256(body)
	canonical := strings.Join([]string{r.Method, r.URL.EscapedPath(), strings.Join(query, "&"), headers.String(),
		fields["SignedHeaders"], hex.EncodeToString(payload[:])}, "\n")
	digest := sha256.Sum256([]byte(canonical))
	toSign := strings.Join([]string{algorithm, amzDate, scope, hex.EncodeToString(digest[:])}, "\n")
	key := []byte("AWS4" + secret)
	for _, part := range []string{day, region, "execute-api", "aws4_request"} {
		key = hmacSHA256(key, part)
	}
	want := hex.EncodeToString(hmacSHA256(key, toSign))
	if !hmac.Equal([]byte(want), []byte(fields["Signature"])) {
		return nil, errors.New("The request signature we calculated does not match the signature you provided.")
	}
	return signed, nil
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func rfc3986(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }

// staticCredentials are the test's AWS credentials.
func staticCredentials(keyID, secret, token string) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: keyID, SecretAccessKey: secret, SessionToken: token, Source: "test"}, nil
	})
}

// TestScrapeSignsIAMRoutesWithSigV4: with --auth sigv4, scrape and jobs go to <api-url>/iam, every request
// (the POST with its body, the long polls with their query, the DELETE) is signed with the credentials'
// key, the session token goes along signed, and the bearer token stays home.
func TestScrapeSignsIAMRoutesWithSigV4(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t, state{status: "queued"}, state{status: "running"}, state{status: "completed", data: `{"rows":3}`})
	f.iam = &iamRoutes{keyID: "AKIDEXAMPLE", secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", region: "eu-west-1"}
	env := map[string]string{"SCRAPE_API_URL": f.srv.URL, "SCRAPE_AUTH": "sigv4", "SCRAPE_TOKEN": "tok"}
	term := &terminal{awsCredentials: staticCredentials(f.iam.keyID, f.iam.secret, "session-token")}
	r := scrapectlEnv(t, env, term, "scrape", "slow", "--params", `{"q":"a b&c"}`, "--region", "eu-west-1", "--progress", "never")
	if r.code != 0 || strings.TrimSpace(r.stdout) != `{"rows":3}` {
		t.Fatalf("exit %d, stdout %q, stderr %q, err %v", r.code, r.stdout, r.stderr, r.err)
	}
	if f.posts != 1 || len(f.gets) < 3 || f.iam.signed != f.posts+len(f.gets) {
		t.Errorf("%d POSTs, %d GETs, %d signed requests: want every request under /iam signed", f.posts, len(f.gets), f.iam.signed)
	}
	if f.gets[0] != "wait=20" {
		t.Errorf("the long poll's query %q: want wait=20 (signed with the request)", f.gets[0])
	}
	if f.iam.bearer != 0 || slices.ContainsFunc(f.iam.tokens, func(s string) bool { return s != "session-token" }) {
		t.Errorf("%d requests carried the bearer token; security tokens %q: want none, and the session's on each", f.iam.bearer, f.iam.tokens)
	}
	if !slices.Contains(f.iam.headers[0], "idempotency-key") {
		t.Errorf("the POST signed %v: want its Idempotency-Key among them", f.iam.headers[0])
	}

	// The URL may name /iam itself; jobs cancel is signed too.
	env["SCRAPE_API_URL"] = f.srv.URL + "/iam/"
	if r := scrapectlEnv(t, env, term, "jobs", "cancel", "job-1", "--region", "eu-west-1"); r.code != 0 || len(f.deletes) != 1 {
		t.Errorf("jobs cancel: exit %d, err %v, DELETEs %v", r.code, r.err, f.deletes)
	}
}

// TestSigV4Refusals: a wrong key is refused (403, not retried) with what the IAM routes need; the region
// must be known; --auth takes bearer or sigv4.
func TestSigV4Refusals(t *testing.T) {
	t.Parallel()
	f := newFakeAPI(t, state{status: "completed", data: `1`})
	f.iam = &iamRoutes{keyID: "AKIDEXAMPLE", secret: "right", region: "eu-west-1"}
	env := map[string]string{"SCRAPE_API_URL": f.srv.URL, "SCRAPE_AUTH": "sigv4"}
	r := scrapectlEnv(t, env, &terminal{awsCredentials: staticCredentials("AKIDEXAMPLE", "wrong", "")}, "scrape", "x", "--region", "eu-west-1")
	if r.code != exitHTTP || !strings.Contains(r.err.Error(), "HTTP 403") || !strings.Contains(r.err.Error(), "signature") ||
		!strings.Contains(r.err.Error(), "ApiIamRoutesArn") || f.posts != 0 {
		t.Errorf("wrong secret: exit %d, err %v, %d POSTs admitted", r.code, r.err, f.posts)
	}
	// Signed for another region: refused as well (the scope is part of the signature).
	r = scrapectlEnv(t, env, &terminal{awsCredentials: staticCredentials("AKIDEXAMPLE", "right", "")}, "scrape", "x", "--region", "us-east-1")
	if r.code != exitHTTP || !strings.Contains(r.err.Error(), "HTTP 403") {
		t.Errorf("wrong region: exit %d, err %v", r.code, r.err)
	}
	env["SCRAPE_AUTH"] = "basic"
	if r := scrapectlEnv(t, env, &terminal{}, "scrape", "x"); r.code != exitUsage || !strings.Contains(r.err.Error(), "bearer or sigv4") {
		t.Errorf("--auth basic: exit %d, err %v", r.code, r.err)
	}
}

// TestSigV4NeedsARegion: without --region, an execute-api host or an AWS configuration's region, scrapectl
// says what to set. (It reads the process's AWS variables: not parallel.)
func TestSigV4NeedsARegion(t *testing.T) {
	for _, k := range []string{"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	env := map[string]string{"SCRAPE_API_URL": "https://api.example.com", "SCRAPE_AUTH": "sigv4"}
	r := scrapectlEnv(t, env, &terminal{awsCredentials: staticCredentials("AKIDEXAMPLE", "s", "")}, "jobs", "get", "job-1")
	if r.code != exitUsage || !strings.Contains(r.err.Error(), "needs the API's region") {
		t.Errorf("no region: exit %d, err %v", r.code, r.err)
	}
	t.Setenv("AWS_REGION", "ap-south-1")
	s, err := newSigV4(context.Background(), &url.URL{Host: "api.example.com"}, "", staticCredentials("k", "s", ""))
	if err != nil || s.region != "ap-south-1" {
		t.Errorf("AWS_REGION: %+v, %v", s, err)
	}
	s, err = newSigV4(context.Background(), &url.URL{Host: "abc123.execute-api.eu-central-1.amazonaws.com"}, "", staticCredentials("k", "s", ""))
	if err != nil || s.region != "eu-central-1" {
		t.Errorf("an execute-api host's region comes before AWS_REGION: %+v, %v", s, err)
	}
}

func TestRegionOfHost(t *testing.T) {
	t.Parallel()
	for host, want := range map[string]string{
		"abc123.execute-api.eu-west-1.amazonaws.com":     "eu-west-1",
		"ABC123.Execute-Api.US-EAST-2.amazonaws.com":     "us-east-2",
		"abc123.execute-api.cn-north-1.amazonaws.com.cn": "cn-north-1",
		"api.example.com":                     "",
		"execute-api.eu-west-1.amazonaws.com": "",
		"abc.execute-api.eu-west-1.evil.com":  "",
		"":                                    "",
	} {
		if got := regionOfHost(host); got != want {
			t.Errorf("regionOfHost(%q) = %q, want %q", host, got, want)
		}
	}
	if iamBase("https://x/prod") != "https://x/prod/iam" || iamBase("https://x/iam") != "https://x/iam" {
		t.Errorf("iamBase: %q %q", iamBase("https://x/prod"), iamBase("https://x/iam"))
	}
}
