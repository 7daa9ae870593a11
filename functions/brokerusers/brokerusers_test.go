package brokerusers

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/brokertest"
	users "github.com/scrapeplatform/platform/shared/brokerusers"
	"github.com/scrapeplatform/platform/shared/testlog"
)

// fakeSecrets is a Secrets Manager double: ARN → secret string.
type fakeSecrets struct {
	mu sync.Mutex
	m  map[string]string
}

func (f *fakeSecrets) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.m[aws.ToString(in.SecretId)]
	if !ok {
		return nil, errors.New("ResourceNotFoundException: Secrets Manager can't find the specified secret")
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(v)}, nil
}

func (f *fakeSecrets) set(arn, user, pass string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b, _ := json.Marshal(map[string]string{"username": user, "password": pass})
	f.m[arn] = string(b)
}

// env is the test broker: its AMQP URL (administrator), management API and the secrets of three users
// with generated names, which are deleted at cleanup.
type env struct {
	amqpURL, mgmtURL string
	admin            *users.Client
	secrets          *fakeSecrets
	names            map[string]string // role → user name
	pass             map[string]string // role → password
	taskQueue        string
}

func managementURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("RABBITMQ_MANAGEMENT_URL")
	if u == "" {
		u = "http://127.0.0.1:15672"
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u + "/api/overview")
	if err != nil {
		t.Fatalf("these tests need RabbitMQ's management API at %s (rabbitmq-plugins enable rabbitmq_management): %v", u, err)
	}
	resp.Body.Close()
	return strings.TrimRight(u, "/")
}

func newEnv(t *testing.T) *env {
	t.Helper()
	amqpURL := brokertest.URL(t)
	u, _ := url.Parse(amqpURL)
	adminPass, _ := u.User.Password()
	e := &env{amqpURL: amqpURL, mgmtURL: managementURL(t), secrets: &fakeSecrets{m: map[string]string{}},
		names: map[string]string{}, pass: map[string]string{}, taskQueue: brokertest.Name("brokerusers")}
	e.admin = users.NewClient(e.mgmtURL, u.User.Username(), adminPass, &http.Client{Timeout: 10 * time.Second})
	e.secrets.set("arn:admin", u.User.Username(), adminPass)
	for _, r := range users.Roles {
		e.names[string(r)] = brokertest.Name("scrape-test-" + string(r))
		e.pass[string(r)] = strings.TrimPrefix(brokertest.Name("pw"), "pw-") + "Secret42"
		e.secrets.set("arn:"+string(r), e.names[string(r)], e.pass[string(r)])
	}
	t.Cleanup(func() {
		for _, n := range e.names {
			if err := e.admin.DeleteUser(context.Background(), n); err != nil && !users.IsNotFound(err) {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	brokertest.DeleteQueues(t, amqpURL, []string{e.taskQueue, e.taskQueue + ".dead"}, nil)
	return e
}

func (e *env) properties() map[string]any {
	return map[string]any{
		"ServiceToken":   "arn:aws:lambda:eu-west-1:123456789012:function:BrokerUsers",
		"ManagementURL":  e.mgmtURL,
		"AdminSecretArn": "arn:admin",
		"TaskQueue":      e.taskQueue,
		"Users": []any{
			map[string]any{"Role": "gateway", "SecretArn": "arn:gateway"},
			map[string]any{"Role": "worker", "SecretArn": "arn:worker"},
			map[string]any{"Role": "monitoring", "SecretArn": "arn:monitoring"},
		},
	}
}

func (e *env) provisioner(t *testing.T) *Provisioner {
	return &Provisioner{Secrets: e.secrets, Log: testlog.New(t, slog.LevelInfo)}
}

// userURL is the AMQP URL of the test broker with name and pass.
func (e *env) userURL(name, pass string) string {
	u, _ := url.Parse(e.amqpURL)
	u.User = url.UserPassword(name, pass)
	return u.String()
}

func refused(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.AccessRefused
}

// declare opens a channel on c and declares queue.
func declare(c *amqp.Connection, queue string) error {
	ch, err := c.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	_, err = ch.QueueDeclare(queue, false, false, false, false, nil)
	return err
}

func (e *env) userExists(t *testing.T, name string) bool {
	t.Helper()
	err := e.admin.Do(t.Context(), http.MethodGet, "/api/users/"+url.PathEscape(name), nil, nil)
	if err != nil && !users.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func mgmtGet(t *testing.T, base, path, user, pass string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestCustomResourceMakesLeastPrivilegeUsers: on the real test broker, Create makes the three users: the
// gateway's and the workers' declare the task queue and its dead-letter queue but not another queue; the
// monitoring user reads the queues through the management API and declares nothing over AMQP. An Update
// with a changed password keeps the physical id and changes the password; Delete removes the users.
func TestCustomResourceMakesLeastPrivilegeUsers(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := newEnv(t)
	p := e.provisioner(t)
	id, _, err := p.Handle(ctx, cfn.Event{RequestType: cfn.RequestCreate, RequestID: "r1", ResourceProperties: e.properties()})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if id != "broker-users-"+e.taskQueue {
		t.Errorf("physical id %q", id)
	}

	for _, role := range []string{"worker", "gateway"} {
		c, err := amqp.Dial(e.userURL(e.names[role], e.pass[role]))
		if err != nil {
			t.Fatalf("%s user: dial: %v", role, err)
		}
		defer c.Close()
		for _, q := range []string{e.taskQueue, e.taskQueue + ".dead"} {
			if err := declare(c, q); err != nil {
				t.Errorf("%s user: declare %s: %v", role, q, err)
			}
		}
		if err := declare(c, brokertest.Name("another-application")); !refused(err) {
			t.Errorf("%s user: declaring another queue: %v; want ACCESS_REFUSED", role, err)
		}
		if code := mgmtGet(t, e.mgmtURL, "/api/queues", e.names[role], e.pass[role]); code != http.StatusUnauthorized {
			t.Errorf("%s user: GET /api/queues: %d; want 401", role, code)
		}
	}

	mon, monPass := e.names["monitoring"], e.pass["monitoring"]
	if code := mgmtGet(t, e.mgmtURL, "/api/queues", mon, monPass); code != http.StatusOK {
		t.Errorf("monitoring user: GET /api/queues: %d; want 200", code)
	}
	if code := mgmtGet(t, e.mgmtURL, "/api/users", mon, monPass); code == http.StatusOK {
		t.Error("monitoring user lists the broker's users")
	}
	// It may open a connection to the vhost (it has permissions there, matching nothing), and no more.
	if c, err := amqp.Dial(e.userURL(mon, monPass)); err != nil {
		t.Errorf("monitoring user: dial: %v", err)
	} else {
		defer c.Close()
		for _, q := range []string{e.taskQueue, brokertest.Name("monitoring")} {
			if err := declare(c, q); !refused(err) {
				t.Errorf("monitoring user: declare %s: %v; want ACCESS_REFUSED", q, err)
			}
		}
	}

	// Update: the worker's secret has a new password.
	oldPass := e.pass["worker"]
	e.pass["worker"] += "x"
	e.secrets.set("arn:worker", e.names["worker"], e.pass["worker"])
	id2, _, err := p.Handle(ctx, cfn.Event{RequestType: cfn.RequestUpdate, PhysicalResourceID: id,
		ResourceProperties: e.properties(), OldResourceProperties: e.properties()})
	if err != nil || id2 != id {
		t.Fatalf("Update: %q, %v; want %q", id2, err, id)
	}
	if c, err := amqp.Dial(e.userURL(e.names["worker"], e.pass["worker"])); err != nil {
		t.Errorf("worker user with the new password: %v", err)
	} else {
		c.Close()
	}
	if c, err := amqp.Dial(e.userURL(e.names["worker"], oldPass)); err == nil {
		c.Close()
		t.Error("worker user: the old password still works")
	}
	for _, r := range users.Roles {
		if !e.userExists(t, e.names[string(r)]) {
			t.Errorf("after Update: %s user is gone", r)
		}
	}

	// Delete, twice (the second finds them gone).
	for range 2 {
		if id3, _, err := p.Handle(ctx, cfn.Event{RequestType: cfn.RequestDelete, PhysicalResourceID: id, ResourceProperties: e.properties()}); err != nil || id3 != id {
			t.Fatalf("Delete: %q, %v", id3, err)
		}
	}
	for _, r := range users.Roles {
		if e.userExists(t, e.names[string(r)]) {
			t.Errorf("after Delete: %s user still exists", r)
		}
	}
}

// TestUpdateDeletesUsersItNoLongerHas: a role whose secret now names another user: the new one is made,
// the old one deleted.
func TestUpdateDeletesUsersItNoLongerHas(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	e := newEnv(t)
	p := e.provisioner(t)
	if _, _, err := p.Handle(ctx, cfn.Event{RequestType: cfn.RequestCreate, ResourceProperties: e.properties()}); err != nil {
		t.Fatal(err)
	}
	old := e.properties()
	newProps := e.properties()
	renamed := brokertest.Name("scrape-test-gateway2")
	e.secrets.set("arn:gateway2", renamed, "renamedPassword1")
	t.Cleanup(func() { _ = e.admin.DeleteUser(context.Background(), renamed) })
	newProps["Users"].([]any)[0] = map[string]any{"Role": "gateway", "SecretArn": "arn:gateway2"}
	if _, _, err := p.Handle(ctx, cfn.Event{RequestType: cfn.RequestUpdate, PhysicalResourceID: "broker-users-" + e.taskQueue,
		ResourceProperties: newProps, OldResourceProperties: old}); err != nil {
		t.Fatal(err)
	}
	if !e.userExists(t, renamed) || e.userExists(t, e.names["gateway"]) || !e.userExists(t, e.names["worker"]) {
		t.Errorf("after Update: new gateway %v, old gateway %v, worker %v; want true, false, true",
			e.userExists(t, renamed), e.userExists(t, e.names["gateway"]), e.userExists(t, e.names["worker"]))
	}
}

// TestDeleteSucceedsWhenTheBrokerIsGone: Delete against a management URL nobody answers (the broker was
// deleted first) and with a secret gone succeeds; Create there fails, saying what failed.
func TestDeleteSucceedsWhenTheBrokerIsGone(t *testing.T) {
	t.Parallel()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	f := &fakeSecrets{m: map[string]string{}}
	f.set("arn:admin", "admin", "adminPassword1")
	f.set("arn:gateway", "scrape-gateway", "gatewayPassword1")
	props := map[string]any{"ManagementURL": gone.URL, "AdminSecretArn": "arn:admin", "TaskQueue": "scraping_tasks",
		"Users": []any{map[string]any{"Role": "gateway", "SecretArn": "arn:gateway"}, map[string]any{"Role": "worker", "SecretArn": "arn:missing"}}}
	p := &Provisioner{Secrets: f, Log: testlog.New(t, slog.LevelInfo)}
	if _, _, err := p.Handle(t.Context(), cfn.Event{RequestType: cfn.RequestDelete, PhysicalResourceID: "broker-users-scraping_tasks", ResourceProperties: props}); err != nil {
		t.Errorf("Delete with the broker gone: %v", err)
	}
	delete(f.m, "arn:admin")
	if _, _, err := p.Handle(t.Context(), cfn.Event{RequestType: cfn.RequestDelete, ResourceProperties: props}); err != nil {
		t.Errorf("Delete with the administrator's secret gone: %v", err)
	}
	f.set("arn:admin", "admin", "adminPassword1")
	_, _, err := p.Handle(t.Context(), cfn.Event{RequestType: cfn.RequestCreate, ResourceProperties: props})
	if err == nil || !strings.Contains(err.Error(), "gateway user scrape-gateway") || strings.Contains(err.Error(), "Password1") {
		t.Errorf("Create with the broker gone: %v; want an error naming the user, without its password", err)
	}
}

// TestErrorsNeverHoldAPassword: a management API whose error answer quotes the request (password and all)
// and a missing user secret give errors that say what failed without a password.
func TestErrorsNeverHoldAPassword(t *testing.T) {
	t.Parallel()
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		http.Error(w, `{"error":"bad_request","reason":`+string(b)+`}`, http.StatusBadRequest)
	}))
	defer echo.Close()
	f := &fakeSecrets{m: map[string]string{}}
	f.set("arn:admin", "admin", "adminPassword1")
	f.set("arn:monitoring", "scrape-monitoring", "monitoringPassword1")
	props := map[string]any{"ManagementURL": echo.URL, "AdminSecretArn": "arn:admin", "TaskQueue": "scraping_tasks",
		"Users": []any{map[string]any{"Role": "monitoring", "SecretArn": "arn:monitoring"}}}
	p := &Provisioner{Secrets: f}
	_, _, err := p.Handle(t.Context(), cfn.Event{RequestType: cfn.RequestCreate, ResourceProperties: props})
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "monitoring user scrape-monitoring") ||
		strings.Contains(err.Error(), "Password1") {
		t.Errorf("Create: %v; want the 400 of the monitoring user without a password", err)
	}
	props["Users"] = []any{map[string]any{"Role": "worker", "SecretArn": "arn:missing"}}
	_, _, err = p.Handle(t.Context(), cfn.Event{RequestType: cfn.RequestCreate, ResourceProperties: props})
	if err == nil || !strings.Contains(err.Error(), "worker user") || !strings.Contains(err.Error(), "arn:missing") {
		t.Errorf("Create with a missing secret: %v", err)
	}
	props["Users"] = []any{map[string]any{"Role": "admin", "SecretArn": "arn:x"}}
	props["ManagementURL"] = "https://admin:adminPassword1@host"
	_, _, err = p.Handle(t.Context(), cfn.Event{RequestType: cfn.RequestCreate, ResourceProperties: props})
	if err == nil || !strings.Contains(err.Error(), `unknown broker user role "admin"`) || strings.Contains(err.Error(), "Password1") {
		t.Errorf("Create with bad properties: %v", err)
	}
}

// cfnResponses is an httptest server standing in for CloudFormation's presigned response URL: it records
// the bodies PUT to it.
func cfnResponses(t *testing.T) (string, func() []cfn.Response) {
	t.Helper()
	var mu sync.Mutex
	var got []cfn.Response
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var resp cfn.Response
		if r.Method != http.MethodPut || json.NewDecoder(r.Body).Decode(&resp) != nil {
			t.Errorf("response URL: %s with an undecodable body", r.Method)
		}
		mu.Lock()
		got = append(got, resp)
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/cloudformation-response?X-Amz-Signature=x", func() []cfn.Response {
		mu.Lock()
		defer mu.Unlock()
		return append([]cfn.Response(nil), got...)
	}
}

// TestLambdaAnswersCloudFormation invokes the cfn-wrapped handler, as the Lambda runtime does, with
// CloudFormation events whose ResponseURL is a test server, and checks the SUCCESS and FAILED answers.
func TestLambdaAnswersCloudFormation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fn := e.provisioner(t).Lambda()
	responseURL, responses := cfnResponses(t)
	event := func(typ cfn.RequestType, id string, props map[string]any) cfn.Event {
		return cfn.Event{RequestType: typ, RequestID: "req-" + string(typ), ResponseURL: responseURL, ResourceType: "Custom::BrokerUsers",
			LogicalResourceID: "BrokerUsers", StackID: "arn:aws:cloudformation:eu-west-1:123456789012:stack/s/1",
			PhysicalResourceID: id, ResourceProperties: props}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := fn(ctx, event(cfn.RequestCreate, "", e.properties())); err != nil {
		t.Fatal(err)
	}
	bad := e.properties()
	e.secrets.set("arn:badworker", "scrape-test-x", "") // no password
	bad["Users"] = []any{map[string]any{"Role": "worker", "SecretArn": "arn:badworker"}}
	if _, err := fn(ctx, event(cfn.RequestCreate, "", bad)); err != nil {
		t.Fatal(err)
	}
	if _, err := fn(ctx, event(cfn.RequestDelete, "broker-users-"+e.taskQueue, e.properties())); err != nil {
		t.Fatal(err)
	}
	got := responses()
	if len(got) != 3 {
		t.Fatalf("%d responses: %+v; want 3", len(got), got)
	}
	want := "broker-users-" + e.taskQueue
	if r := got[0]; r.Status != cfn.StatusSuccess || r.PhysicalResourceID != want || r.RequestID != "req-Create" ||
		r.LogicalResourceID != "BrokerUsers" || r.Reason != "" {
		t.Errorf("Create: %+v; want SUCCESS with %s", r, want)
	}
	if r := got[1]; r.Status != cfn.StatusFailed || r.PhysicalResourceID == "" || !strings.Contains(r.Reason, "worker user") ||
		!strings.Contains(r.Reason, "lacks username or password") {
		t.Errorf("failed Create: %+v; want FAILED with the reason", r)
	}
	if r := got[2]; r.Status != cfn.StatusSuccess || r.PhysicalResourceID != want {
		t.Errorf("Delete: %+v; want SUCCESS with %s", r, want)
	}
	if e.userExists(t, e.names["gateway"]) {
		t.Error("the gateway user outlived the Delete")
	}
}
