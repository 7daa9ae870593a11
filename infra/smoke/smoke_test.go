package smoke

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

var testCreds = credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")

// fakeAPI stands in for API Gateway: it refuses anonymous calls, verifies SigV4 signatures on /iam/*
// by signing the request again as received, and checks bearer tokens on the user routes. Health and
// scrape answers are played from queues (the last one repeats).
type fakeAPI struct {
	t            *testing.T
	openHealth   bool
	health       []reply
	scrapes      []reply
	mu           sync.Mutex
	calls        []string
	badSignature int
	// jobs, when set, makes POST …/scrape with Prefer: respond-async answer 202 and GET …/jobs/j1 play
	// these answers, as a gateway with jobs does.
	jobs []reply
}

type reply struct {
	status int
	body   string
}

func (f *fakeAPI) next(q *[]reply) reply {
	r := (*q)[0]
	if len(*q) > 1 {
		*q = (*q)[1:]
	}
	return r
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	write := func(rep reply) { w.WriteHeader(rep.status); _, _ = io.WriteString(w, rep.body) }
	if strings.HasPrefix(r.URL.Path, "/iam/") {
		if err := verifySigV4(r, body); err != nil {
			f.badSignature++
			write(reply{403, `{"message":"` + err.Error() + `"}`})
			return
		}
	} else if r.Header.Get("Authorization") != "Bearer good-token" && !(f.openHealth && r.URL.Path == "/health") {
		write(reply{401, `{"message":"Unauthorized"}`})
		return
	}
	switch r.URL.Path {
	case "/health":
		write(reply{200, `{"status":"healthy"}`})
	case "/iam/health":
		write(f.next(&f.health))
	case "/iam/scrape", "/scrape":
		if !strings.Contains(string(body), `"script_name":"example_scraper"`) || !strings.Contains(string(body), `"url":"https://example.com/"`) {
			write(reply{422, `{"error":"unexpected body ` + string(body) + `"}`})
			return
		}
		if f.jobs != nil && r.Header.Get("Prefer") == "respond-async" {
			w.Header().Set("Location", "/jobs/j1")
			write(reply{202, `{"request_id":"j1","status":"queued"}`})
			return
		}
		write(f.next(&f.scrapes))
	case "/iam/jobs/j1", "/jobs/j1":
		if r.URL.Query().Get("wait") != "20" {
			write(reply{400, `{"error":"no long poll"}`})
			return
		}
		write(f.next(&f.jobs))
	case "/status":
		write(reply{200, `{"queue_length":0,"active_workers":1}`})
	default:
		write(reply{404, `{"message":"Not Found"}`})
	}
}

// verifySigV4 signs the request again, as API Gateway would, over the headers it says it signed.
func verifySigV4(r *http.Request, body []byte) error {
	authz := r.Header.Get("Authorization")
	if !strings.HasPrefix(authz, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") || !strings.Contains(authz, "/eu-west-1/execute-api/aws4_request") {
		return fmt.Errorf("not a SigV4 signature for execute-api in eu-west-1: %q", authz)
	}
	if r.Header.Get("X-Amz-Security-Token") != "session-token" {
		return fmt.Errorf("no session token")
	}
	signed := authz[strings.Index(authz, "SignedHeaders=")+len("SignedHeaders="):]
	signed = signed[:strings.Index(signed, ",")]
	when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return err
	}
	again, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	for _, h := range strings.Split(signed, ";") {
		if h != "host" && h != "content-length" {
			again.Header.Set(h, r.Header.Get(h))
		}
	}
	again.Header.Del("X-Amz-Date")
	again.Header.Del("X-Amz-Security-Token")
	creds, _ := testCreds.Retrieve(context.Background())
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, again, hex.EncodeToString(sum[:]), "execute-api", "eu-west-1", when); err != nil {
		return err
	}
	if again.Header.Get("Authorization") != authz {
		return fmt.Errorf("signature mismatch:\n got %s\nwant %s", authz, again.Header.Get("Authorization"))
	}
	return nil
}

func run(t *testing.T, api *fakeAPI, cfg Config) (string, error) {
	t.Helper()
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	var log bytes.Buffer
	if cfg.Script == "" {
		cfg.Script, cfg.Params = "example_scraper", []byte(`{"url":"https://example.com/"}`)
	}
	cfg.APIURL, cfg.Region = srv.URL+"/", "eu-west-1"
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	cfg.Interval = 10 * time.Millisecond
	c := &Checker{HTTP: srv.Client(), Credentials: testCreds, Log: &log}
	err := c.Run(context.Background(), cfg)
	t.Log(log.String())
	return log.String(), err
}

const completed = `{"request_id":"r1","status":"completed","data":{"title":"Example Domain"},"worker_id":"worker-1"}`

func TestHealthyStage(t *testing.T) {
	api := &fakeAPI{t: t,
		health:  []reply{{503, `{"status":"unhealthy","components":{"rabbitmq":"disconnected"}}`}, {200, `{"status":"healthy","components":{"rabbitmq":"connected"}}`}},
		scrapes: []reply{{504, `{"error_code":"no_worker_response"}`}, {429, `{"error_code":"queue_full"}`}, {200, completed}},
	}
	log, err := run(t, api, Config{JWT: "good-token", RequireJWT: true})
	if err != nil {
		t.Fatal(err)
	}
	if api.badSignature != 0 {
		t.Fatalf("%d requests with a bad signature", api.badSignature)
	}
	want := []string{"GET /health", "GET /iam/health", "GET /iam/health", "POST /iam/scrape", "POST /iam/scrape", "POST /iam/scrape", "GET /health", "POST /scrape", "GET /status"}
	if strings.Join(api.calls, ",") != strings.Join(want, ",") {
		t.Fatalf("calls %v, want %v", api.calls, want)
	}
	if !strings.Contains(log, "completed by worker-1") {
		t.Fatalf("log does not report the scrape:\n%s", log)
	}
}

// TestHealthyStageWithJobs: a gateway with jobs answers 202 and the check follows the job (under the
// route prefix it posted to) until it completes, however long workers take to start.
func TestHealthyStageWithJobs(t *testing.T) {
	running := reply{200, `{"request_id":"j1","status":"running"}`}
	api := &fakeAPI{t: t,
		health:  []reply{{200, `{"status":"healthy"}`}},
		scrapes: []reply{{500, `{"error":"the check must not post synchronously"}`}},
		jobs:    []reply{{200, `{"request_id":"j1","status":"queued"}`}, running, running, {200, completed}},
	}
	log, err := run(t, api, Config{JWT: "good-token", RequireJWT: true})
	if err != nil {
		t.Fatal(err)
	}
	if api.badSignature != 0 {
		t.Fatalf("%d requests with a bad signature (the Prefer header must be signed too)", api.badSignature)
	}
	want := []string{"GET /health", "GET /iam/health", "POST /iam/scrape", "GET /iam/jobs/j1", "GET /iam/jobs/j1", "GET /iam/jobs/j1", "GET /iam/jobs/j1",
		"GET /health", "POST /scrape", "GET /jobs/j1", "GET /status"}
	if strings.Join(api.calls, ",") != strings.Join(want, ",") {
		t.Fatalf("calls %v, want %v", api.calls, want)
	}
	if !strings.Contains(log, "wait job /jobs/j1: running") || !strings.Contains(log, "completed by worker-1") {
		t.Fatalf("log:\n%s", log)
	}
}

func TestFailures(t *testing.T) {
	healthy := []reply{{200, `{"status":"healthy"}`}}
	tests := []struct {
		name string
		api  *fakeAPI
		cfg  Config
		want string
	}{
		{"authorizer missing", &fakeAPI{openHealth: true, health: healthy, scrapes: []reply{{200, completed}}}, Config{RequireJWT: false},
			"the JWT authorizer is not in front of the API"},
		{"never healthy", &fakeAPI{health: []reply{{503, `{"status":"unhealthy"}`}}, scrapes: []reply{{200, completed}}}, Config{Timeout: 300 * time.Millisecond},
			"GET /iam/health: not healthy within 300ms"},
		{"unknown script fails at once", &fakeAPI{health: healthy, scrapes: []reply{{200, `{"status":"failed","error_code":"script_not_found"}`}}}, Config{},
			"POST /iam/scrape: answered 200 {\"status\":\"failed\",\"error_code\":\"script_not_found\"}"},
		{"no worker ever", &fakeAPI{health: healthy, scrapes: []reply{{504, `{"error_code":"no_worker_response"}`}}}, Config{Timeout: 300 * time.Millisecond},
			"POST /iam/scrape: not healthy within 300ms"},
		{"JWT required", &fakeAPI{health: healthy, scrapes: []reply{{200, completed}}}, Config{RequireJWT: true},
			"set SMOKE_JWT"},
		{"JWT refused", &fakeAPI{health: healthy, scrapes: []reply{{200, completed}}}, Config{JWT: "expired-token", RequireJWT: true},
			"GET /health with the JWT answered 401"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.api.t = t
			_, err := run(t, tt.api, tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestSignatureIsChecked(t *testing.T) {
	// The fake's verification is itself tested: a request signed for another service is refused.
	api := &fakeAPI{t: t, health: []reply{{200, `{"status":"healthy"}`}}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/iam/health", nil)
	creds, _ := testCreds.Retrieve(context.Background())
	sum := sha256.Sum256(nil)
	_ = v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "execute-api", "eu-west-1", time.Now())
	req.Header.Set("X-Amz-Date", time.Now().Add(-time.Hour).UTC().Format("20060102T150405Z"))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a tampered request got %d, want 403", resp.StatusCode)
	}
}

func TestLoadConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := LoadConfig(env(nil))
	if err != nil || !c.RequireJWT || c.Script != "example_scraper" || c.Timeout != 10*time.Minute {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	_, err = LoadConfig(env(map[string]string{"SMOKE_PARAMS": "[1]", "SMOKE_TIMEOUT": "soon", "SMOKE_REQUIRE_JWT": "maybe"}))
	for _, want := range []string{"SMOKE_PARAMS", "SMOKE_TIMEOUT", "SMOKE_REQUIRE_JWT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}
