package stack

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// Least-privilege broker users (issue 11). The platform's processes never use the broker's administrator:
// ProvisionBrokerUsers creates, through the management HTTP API and with the administrator credentials the
// stack was given (RABBITMQ_URL), three users with generated passwords:
//
//   - the gateway's: configure, write and read limited to the task queue's names (<task>, <task>.dlx,
//     <task>.dead, <task>.cancel, <task>.lease, <task>.webhooks*: `^<task>(\..*)?$`), the server-named
//     queues it declares (amq.gen-*), the default exchange it publishes tasks through (amq.default, write)
//     and the direct reply-to pseudo-queue (amq.rabbitmq.reply-to, read);
//   - the workers': the same resources (they declare the topology, consume the task queue, reply through
//     the default exchange, bind a server-named queue to the cancel exchange);
//   - a monitoring one for the queue-depth Lambda: tags monitoring (read the management API) and
//     policymaker (it keeps the task queue's bound policy), and no AMQP permission at all.
//
// Neither can touch another application's queues, read the management API, or act as an administrator.
// The passwords are kept in a file of the stack's data folder (0600), so a restart reuses them (and a
// process still connected keeps working); the user names carry a hash of that folder, so two stacks on one
// broker (a broker found running is shared) never overwrite each other's users.

// BrokerUsersOptions configures ProvisionBrokerUsers.
type BrokerUsersOptions struct {
	// AdminURL is the AMQP URL with the administrator's credentials (RABBITMQ_URL).
	AdminURL string
	// ManagementURL is the management API's base URL, e.g. http://127.0.0.1:15672.
	ManagementURL string
	// TaskQueue is the task queue's name (RABBITMQ_TASK_QUEUE).
	TaskQueue string
	// StateFile keeps the users' names and passwords across restarts (created 0600).
	StateFile string
	// Timeout bounds each management API call (default 10 s).
	Timeout time.Duration
}

// BrokerUsers are the users ProvisionBrokerUsers made: AMQP URLs for the gateway and the workers, and the
// management credentials of the monitoring user.
type BrokerUsers struct {
	GatewayURL, WorkerURL          string
	MonitoringUser, MonitoringPass string
}

// brokerUserState is the StateFile's content.
type brokerUserState struct {
	Gateway, Worker, Monitoring brokerUser
}

type brokerUser struct{ Name, Password string }

// BrokerPermissions are the configure, write and read regular expressions of the gateway's and the
// workers' users for taskQueue.
func BrokerPermissions(taskQueue string) (configure, write, read string) {
	q := regexp.QuoteMeta(taskQueue)
	configure = `^(` + q + `(\..*)?|amq\.gen-.*)$`
	write = `^(` + q + `(\..*)?|amq\.gen-.*|amq\.default)$`
	read = `^(` + q + `(\..*)?|amq\.gen-.*|amq\.rabbitmq\.reply-to.*)$`
	return configure, write, read
}

// ProvisionBrokerUsers creates (or updates) the gateway's, the workers' and the monitoring user in the
// AdminURL's virtual host and returns their credentials. The error says what failed; the caller decides
// whether to go on with the administrator's credentials.
func ProvisionBrokerUsers(ctx context.Context, o BrokerUsersOptions) (BrokerUsers, error) {
	admin, err := url.Parse(o.AdminURL)
	if err != nil || admin.User == nil {
		return BrokerUsers{}, errors.New("broker users: RABBITMQ_URL must carry the administrator's user and password")
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	vhost := "/"
	if p := admin.Path; p != "" && p != "/" {
		vhost, _ = url.PathUnescape(p[1:])
	}
	state, err := loadBrokerUsers(o.StateFile)
	if err != nil {
		return BrokerUsers{}, err
	}
	m := mgmt{base: o.ManagementURL, user: admin.User.Username(), client: &http.Client{Timeout: o.Timeout}}
	m.pass, _ = admin.User.Password()
	configure, write, read := BrokerPermissions(o.TaskQueue)
	for _, u := range []struct {
		user                   brokerUser
		tags                   string
		configure, write, read string
	}{
		{state.Gateway, "", configure, write, read},
		{state.Worker, "", configure, write, read},
		{state.Monitoring, "monitoring,policymaker", "^$", "^$", "^$"},
	} {
		if err := m.put(ctx, "/api/users/"+url.PathEscape(u.user.Name), map[string]string{"password": u.user.Password, "tags": u.tags}); err != nil {
			return BrokerUsers{}, err
		}
		perms := map[string]string{"configure": u.configure, "write": u.write, "read": u.read}
		if err := m.put(ctx, "/api/permissions/"+url.PathEscape(vhost)+"/"+url.PathEscape(u.user.Name), perms); err != nil {
			return BrokerUsers{}, err
		}
	}
	withUser := func(u brokerUser) string {
		c := *admin
		c.User = url.UserPassword(u.Name, u.Password)
		return c.String()
	}
	return BrokerUsers{
		GatewayURL: withUser(state.Gateway), WorkerURL: withUser(state.Worker),
		MonitoringUser: state.Monitoring.Name, MonitoringPass: state.Monitoring.Password,
	}, nil
}

// loadBrokerUsers reads the state file, or creates it with new names and passwords.
func loadBrokerUsers(path string) (brokerUserState, error) {
	var s brokerUserState
	b, err := os.ReadFile(path)
	if err == nil {
		if err := json.Unmarshal(b, &s); err == nil && s.Gateway.Name != "" && s.Worker.Name != "" && s.Monitoring.Name != "" {
			return s, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return s, fmt.Errorf("broker users: %w", err)
	}
	abs, _ := filepath.Abs(path)
	sum := sha256.Sum256([]byte(abs))
	prefix := "scrape-" + hex.EncodeToString(sum[:4]) + "-"
	for _, u := range []*brokerUser{&s.Gateway, &s.Worker, &s.Monitoring} {
		var p [24]byte
		_, _ = rand.Read(p[:])
		u.Password = hex.EncodeToString(p[:])
	}
	s.Gateway.Name, s.Worker.Name, s.Monitoring.Name = prefix+"gateway", prefix+"worker", prefix+"monitoring"
	b, _ = json.MarshalIndent(s, "", "  ")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return s, fmt.Errorf("broker users: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return s, fmt.Errorf("broker users: %w", err)
	}
	return s, nil
}

// mgmt is a minimal management API client.
type mgmt struct {
	base, user, pass string
	client           *http.Client
}

func (m mgmt) put(ctx context.Context, path string, body any) error {
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, m.base+path, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("broker users: %w", err)
	}
	req.SetBasicAuth(m.user, m.pass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		return fmt.Errorf("broker users: the management API at %s: %w", m.base, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("broker users: PUT %s: %s: %s", path, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// DeleteBrokerUsers removes the users of a state file (tests; a person can use rabbitmqctl delete_user).
func DeleteBrokerUsers(ctx context.Context, adminURL, managementURL, stateFile string) error {
	s, err := loadBrokerUsers(stateFile)
	if err != nil {
		return err
	}
	admin, err := url.Parse(adminURL)
	if err != nil || admin.User == nil {
		return errors.New("broker users: the admin URL carries no user")
	}
	pass, _ := admin.User.Password()
	client := &http.Client{Timeout: 10 * time.Second}
	var errs []error
	for _, u := range []brokerUser{s.Gateway, s.Worker, s.Monitoring} {
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, managementURL+"/api/users/"+url.PathEscape(u.Name), nil)
		if err != nil {
			return err
		}
		req.SetBasicAuth(admin.User.Username(), pass)
		resp, err := client.Do(req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		_ = resp.Body.Close()
		if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusNotFound {
			errs = append(errs, fmt.Errorf("delete %s: %s", u.Name, resp.Status))
		}
	}
	return errors.Join(errs...)
}
