package stack

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/scrapeplatform/platform/shared/broker"
)

// privateBrokerWithManagement starts a private node with the management plugin, as `make run` starts one
// when no broker answers (the machine's shared broker is left alone), and returns its admin URL and
// management URL.
func privateBrokerWithManagement(t *testing.T) (adminURL, managementURL string) {
	t.Helper()
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		t.Fatal("this test starts a private RabbitMQ node and needs rabbitmq-server installed (apt-get install rabbitmq-server)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	base := freePortRange(t, 2)
	adminURL = "amqp://guest:guest@127.0.0.1:" + strconv.Itoa(base+1) + "/"
	b, err := RunBroker(ctx, BrokerOptions{URL: adminURL, DataDir: t.TempDir(), ManagementPort: base + 2, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Stop() })
	if b.Origin != BrokerPrivate || b.ManagementURL != "http://127.0.0.1:"+strconv.Itoa(base+2) {
		t.Fatalf("broker %+v; want a private node with its management API on port %d", b, base+2)
	}
	// The plugin may answer a moment after AMQP does.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get(b.ManagementURL + "/api/overview")
		if err == nil {
			_ = resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the management API never answered: %v", err)
		}
	}
	return adminURL, b.ManagementURL
}

// TestBrokerUsersAreLeastPrivilege: the users ProvisionBrokerUsers makes on a real broker can do what their
// process needs and nothing more: the workers' user declares the task queue's topology and consumes it, the
// gateway's publishes tasks through the default exchange and consumes direct replies; neither declares
// another application's queue nor reads the management API; the monitoring user reads the task queue's
// depth through the management API, may not list users and has no AMQP resource. A second provisioning
// keeps the passwords (state file).
func TestBrokerUsersAreLeastPrivilege(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	admin, management := privateBrokerWithManagement(t)
	queue := "scraping_tasks"
	state := filepath.Join(t.TempDir(), "broker-users.json")
	opts := BrokerUsersOptions{AdminURL: admin, ManagementURL: management, TaskQueue: queue, StateFile: state}
	users, err := ProvisionBrokerUsers(ctx, opts)
	if err != nil {
		t.Fatalf("ProvisionBrokerUsers: %v", err)
	}
	again, err := ProvisionBrokerUsers(ctx, opts)
	if err != nil || again != users {
		t.Fatalf("second provisioning: %+v (%v); want the same users and passwords", again, err)
	}
	for _, u := range []string{users.GatewayURL, users.WorkerURL} {
		if parsed, _ := url.Parse(u); parsed.User.Username() == "guest" {
			t.Fatalf("a platform process would use guest: %s", parsed.Redacted())
		}
	}

	// The workers' user: the topology and a consumer on the task queue.
	wc := dial(t, users.WorkerURL)
	ch := channel(t, wc)
	if err := broker.NewTopology(queue).Declare(ch); err != nil {
		t.Fatalf("worker user: declare the topology: %v", err)
	}
	if _, err := ch.Consume(queue, "", false, false, false, false, nil); err != nil {
		t.Fatalf("worker user: consume the task queue: %v", err)
	}
	if _, err := channel(t, wc).QueueDeclare("another-application", false, true, false, false, nil); !refused(err) {
		t.Errorf("worker user: declaring another application's queue: %v; want ACCESS_REFUSED", err)
	}

	// The gateway's user: direct reply-to and a task through the default exchange.
	gc := dial(t, users.GatewayURL)
	gch := channel(t, gc)
	if _, err := gch.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil); err != nil {
		t.Fatalf("gateway user: consume direct replies: %v", err)
	}
	if err := gch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	dc, err := gch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, amqp.Publishing{Body: []byte("{}"), ReplyTo: "amq.rabbitmq.reply-to"})
	if err != nil {
		t.Fatalf("gateway user: publish a task: %v", err)
	}
	if ok, err := dc.WaitContext(ctx); err != nil || !ok {
		t.Fatalf("gateway user: the task was not confirmed (%v, %v)", ok, err)
	}
	if _, err := channel(t, gc).QueueDeclare("another-application", false, true, false, false, nil); !refused(err) {
		t.Errorf("gateway user: declaring another application's queue: %v; want ACCESS_REFUSED", err)
	}
	for name, u := range map[string]string{"gateway": users.GatewayURL, "worker": users.WorkerURL} {
		parsed, _ := url.Parse(u)
		pass, _ := parsed.User.Password()
		if code := mgmtGet(t, management, "/api/overview", parsed.User.Username(), pass); code != http.StatusUnauthorized {
			t.Errorf("%s user reads the management API: %d; want 401", name, code)
		}
	}

	// The monitoring user: the queue's depth, not the users.
	if code := mgmtGet(t, management, "/api/queues/%2F/"+url.PathEscape(queue), users.MonitoringUser, users.MonitoringPass); code != http.StatusOK {
		t.Errorf("monitoring user: GET the task queue: %d; want 200", code)
	}
	if code := mgmtGet(t, management, "/api/users", users.MonitoringUser, users.MonitoringPass); code == http.StatusOK {
		t.Errorf("monitoring user lists the broker's users")
	}

	// The gateway's status user: the task queue and its consumers, and no policy, unlike the monitoring
	// user, which keeps the queue's bound policy.
	if code := mgmtGet(t, management, "/api/queues/%2F/"+url.PathEscape(queue), users.StatusUser, users.StatusPass); code != http.StatusOK {
		t.Errorf("status user: GET the task queue: %d; want 200", code)
	}
	policy := `{"pattern":"^` + queue + `$","definition":{"max-length":1},"apply-to":"queues"}`
	if code := mgmtDo(t, http.MethodPut, management, "/api/policies/%2F/status-user-test", policy, users.StatusUser, users.StatusPass); code != http.StatusUnauthorized && code != http.StatusForbidden {
		t.Errorf("status user: PUT a policy: %d; want 401 or 403", code)
	}
	if code := mgmtDo(t, http.MethodPut, management, "/api/policies/%2F/monitoring-user-test", policy, users.MonitoringUser, users.MonitoringPass); code/100 != 2 {
		t.Errorf("monitoring user: PUT a policy: %d; want 2xx (it keeps the queue's bound policy)", code)
	}
	amqpAddr, _ := url.Parse(admin)
	su := &url.URL{Scheme: "amqp", Host: amqpAddr.Host, Path: "/", User: url.UserPassword(users.StatusUser, users.StatusPass)}
	if sc, err := amqp.Dial(su.String()); err == nil {
		defer sc.Close()
		if _, err := channel(t, sc).Consume(queue, "", false, false, false, false, nil); !refused(err) {
			t.Errorf("status user: consuming the task queue: %v; want ACCESS_REFUSED", err)
		}
	}
	mu := &url.URL{Scheme: "amqp", Host: amqpAddr.Host, Path: "/", User: url.UserPassword(users.MonitoringUser, users.MonitoringPass)}
	if mc, err := amqp.Dial(mu.String()); err == nil {
		defer mc.Close()
		if _, err := channel(t, mc).Consume(queue, "", false, false, false, false, nil); !refused(err) {
			t.Errorf("monitoring user: consuming the task queue: %v; want ACCESS_REFUSED", err)
		}
	}
}

func dial(t *testing.T, u string) *amqp.Connection {
	t.Helper()
	c, err := amqp.Dial(u)
	if err != nil {
		t.Fatalf("dial as %s: %v", redactedURL(u), err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func redactedURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "?"
	}
	return p.Redacted()
}

func channel(t *testing.T, c *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func refused(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.AccessRefused
}

func mgmtGet(t *testing.T, base, path, user, pass string) int {
	t.Helper()
	return mgmtDo(t, http.MethodGet, base, path, "", user, pass)
}

func mgmtDo(t *testing.T, method, base, path, body, user, pass string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestBrokerUsersWithRabbitmqctl: without a management API, the users are made with rabbitmqctl on the
// machine's own broker (CI's, whose management plugin is off), only once its listeners show that it is the
// broker at the URL; DeleteBrokerUsers removes them again.
func TestBrokerUsersWithRabbitmqctl(t *testing.T) {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		t.Fatal("this test needs rabbitmqctl and CI's RabbitMQ on 127.0.0.1:5672")
	}
	t.Parallel()
	ctx := t.Context()
	opts := BrokerUsersOptions{AdminURL: "amqp://guest:guest@127.0.0.1:5672/", TaskQueue: "h5-ctl-test",
		StateFile: filepath.Join(t.TempDir(), "broker-users.json"), Ctl: []string{"rabbitmqctl"}, Timeout: 30 * time.Second}
	// Another port: the local node is not that broker, so nothing is made.
	wrong := opts
	wrong.AdminURL = "amqp://guest:guest@127.0.0.1:1/"
	if _, err := ProvisionBrokerUsers(ctx, wrong); err == nil || !strings.Contains(err.Error(), "not 1") {
		t.Fatalf("users for a broker on port 1 made through the node on 5672: %v", err)
	}
	users, err := ProvisionBrokerUsers(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := DeleteBrokerUsers(context.Background(), opts); err != nil {
			t.Errorf("DeleteBrokerUsers: %v", err)
		}
	})
	if users.Via != "rabbitmqctl" {
		t.Errorf("Via = %q", users.Via)
	}
	c := dial(t, users.WorkerURL)
	if _, err := channel(t, c).QueueDeclare("h5-ctl-test", false, true, true, false, nil); err != nil {
		t.Errorf("worker user: declare its task queue: %v", err)
	}
	if _, err := channel(t, c).QueueDeclare("another-application", false, true, true, false, nil); !refused(err) {
		t.Errorf("worker user: declaring another application's queue: %v; want ACCESS_REFUSED", err)
	}
}

// A state file from before the status user keeps its users and passwords and gets the status user; a
// second load changes nothing.
func TestBrokerUserStateGetsMissingUsers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker-users.json")
	old := `{"Gateway":{"Name":"g","Password":"gp"},"Worker":{"Name":"w","Password":"wp"},"Monitoring":{"Name":"m","Password":"mp"}}`
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := loadBrokerUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Gateway != (brokerUser{"g", "gp"}) || s.Worker != (brokerUser{"w", "wp"}) || s.Monitoring != (brokerUser{"m", "mp"}) {
		t.Fatalf("the users already made changed: %+v", s)
	}
	if !strings.HasSuffix(s.Status.Name, "-status") || len(s.Status.Password) < 32 {
		t.Fatalf("status user %+v; want a generated name and password", s.Status)
	}
	again, err := loadBrokerUsers(path)
	if err != nil || again != s {
		t.Fatalf("second load: %+v (%v); want %+v, kept in the file", again, err, s)
	}
}
