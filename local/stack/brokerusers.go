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
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
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
	// Ctl, when the management API does not answer, is the rabbitmqctl command (with its node option, if
	// any) to make the users with instead, e.g. {"rabbitmqctl"} for the machine's own broker; nil: none.
	// rabbitmq-diagnostics is expected beside it.
	Ctl []string
	// StateFile keeps the users' names and passwords across restarts (created 0600).
	StateFile string
	// Timeout bounds each management API call (default 10 s).
	Timeout time.Duration
}

// BrokerUsers are the users ProvisionBrokerUsers made: AMQP URLs for the gateway and the workers, and the
// management credentials of the monitoring user.
type BrokerUsers struct {
	// Via says how they were made: "management API at <url>" or "rabbitmqctl".
	Via                            string
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
	port := admin.Port()
	if port == "" {
		port = "5672"
	}
	ua, err := chooseUserAdmin(ctx, o, admin, port)
	if err != nil {
		return BrokerUsers{}, err
	}
	configure, write, read := BrokerPermissions(o.TaskQueue)
	for _, u := range []struct {
		user                   brokerUser
		tags                   string
		configure, write, read string
	}{
		{state.Gateway, "", configure, write, read},
		{state.Worker, "", configure, write, read},
		{state.Monitoring, "monitoring policymaker", "^$", "^$", "^$"},
	} {
		if err := ua.putUser(ctx, u.user.Name, u.user.Password, u.tags); err != nil {
			return BrokerUsers{}, err
		}
		if err := ua.putPermissions(ctx, vhost, u.user.Name, u.configure, u.write, u.read); err != nil {
			return BrokerUsers{}, err
		}
	}
	withUser := func(u brokerUser) string {
		c := *admin
		c.User = url.UserPassword(u.Name, u.Password)
		return c.String()
	}
	return BrokerUsers{
		Via:        ua.String(),
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

// userAdmin makes users: through the management API (mgmt) or rabbitmqctl (ctlAdmin).
type userAdmin interface {
	putUser(ctx context.Context, name, password, tags string) error
	putPermissions(ctx context.Context, vhost, name, configure, write, read string) error
	deleteUser(ctx context.Context, name string) error
	amqpPorts(ctx context.Context) ([]string, error)
	String() string
}

// chooseUserAdmin picks the management API, else rabbitmqctl, and checks that the broker it reaches is
// the one at the AMQP URL (it listens on port): a management API or a local node that belongs to another
// broker is never changed.
func chooseUserAdmin(ctx context.Context, o BrokerUsersOptions, admin *url.URL, port string) (userAdmin, error) {
	pass, _ := admin.User.Password()
	var candidates []userAdmin
	if o.ManagementURL != "" {
		candidates = append(candidates, mgmt{base: strings.TrimRight(o.ManagementURL, "/"), user: admin.User.Username(), pass: pass,
			client: &http.Client{Timeout: o.Timeout}})
	}
	if len(o.Ctl) > 0 {
		candidates = append(candidates, ctlAdmin{cmd: o.Ctl, timeout: 4 * o.Timeout})
	}
	var errs []error
	for _, c := range candidates {
		ports, err := c.amqpPorts(ctx)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %w", c, err))
		case !slices.Contains(ports, port):
			errs = append(errs, fmt.Errorf("%s belongs to a broker that listens on AMQP ports %v, not %s", c, ports, port))
		default:
			return c, nil
		}
	}
	if len(errs) == 0 {
		return nil, errors.New("broker users: no management API or rabbitmqctl to make them with")
	}
	return nil, fmt.Errorf("broker users: %w", errors.Join(errs...))
}

// mgmt is a minimal management API client.
type mgmt struct {
	base, user, pass string
	client           *http.Client
}

func (m mgmt) String() string { return "the management API at " + m.base }

func (m mgmt) putUser(ctx context.Context, name, password, tags string) error {
	return m.do(ctx, http.MethodPut, "/api/users/"+url.PathEscape(name), map[string]string{"password": password, "tags": strings.ReplaceAll(tags, " ", ",")}, nil)
}

func (m mgmt) putPermissions(ctx context.Context, vhost, name, configure, write, read string) error {
	return m.do(ctx, http.MethodPut, "/api/permissions/"+url.PathEscape(vhost)+"/"+url.PathEscape(name),
		map[string]string{"configure": configure, "write": write, "read": read}, nil)
}

func (m mgmt) deleteUser(ctx context.Context, name string) error {
	return m.do(ctx, http.MethodDelete, "/api/users/"+url.PathEscape(name), nil, nil)
}

func (m mgmt) amqpPorts(ctx context.Context) ([]string, error) {
	var overview struct {
		Listeners []struct {
			Protocol string
			Port     int
		}
	}
	if err := m.do(ctx, http.MethodGet, "/api/overview", nil, &overview); err != nil {
		return nil, err
	}
	var ports []string
	for _, l := range overview.Listeners {
		if l.Protocol == "amqp" || l.Protocol == "amqp/ssl" {
			ports = append(ports, strconv.Itoa(l.Port))
		}
	}
	return ports, nil
}

func (m mgmt) do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, m.base+path, r)
	if err != nil {
		return err
	}
	req.SetBasicAuth(m.user, m.pass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(msg))
	}
	if out != nil {
		return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
	}
	return nil
}

// ctlAdmin makes users with rabbitmqctl (the machine's own broker, when its management plugin is off).
type ctlAdmin struct {
	cmd     []string
	timeout time.Duration
}

func (c ctlAdmin) String() string { return strings.Join(c.cmd, " ") }

func (c ctlAdmin) run(ctx context.Context, tool string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	name := c.cmd[0]
	if tool != "" {
		name = filepath.Join(filepath.Dir(name), tool)
	}
	cmd := exec.CommandContext(ctx, name, append(append(slices.Clone(c.cmd[1:]), "-q"), args...)...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", filepath.Base(name), args[0], err, lastLine(out))
	}
	return string(out), nil
}

func (c ctlAdmin) putUser(ctx context.Context, name, password, tags string) error {
	if _, err := c.run(ctx, "", "add_user", name, password); err != nil {
		if _, err2 := c.run(ctx, "", "change_password", name, password); err2 != nil {
			return fmt.Errorf("%w; %w", err, err2)
		}
	}
	_, err := c.run(ctx, "", append([]string{"set_user_tags", name}, strings.Fields(tags)...)...)
	return err
}

func (c ctlAdmin) putPermissions(ctx context.Context, vhost, name, configure, write, read string) error {
	_, err := c.run(ctx, "", "set_permissions", "-p", vhost, name, configure, write, read)
	return err
}

func (c ctlAdmin) deleteUser(ctx context.Context, name string) error {
	_, err := c.run(ctx, "", "delete_user", name)
	return err
}

var listenerPort = regexp.MustCompile(`port: (\d+), protocol: amqp`)

func (c ctlAdmin) amqpPorts(ctx context.Context) ([]string, error) {
	out, err := c.run(ctx, "rabbitmq-diagnostics", "listeners")
	if err != nil {
		return nil, err
	}
	var ports []string
	for _, m := range listenerPort.FindAllStringSubmatch(out, -1) {
		ports = append(ports, m[1])
	}
	return ports, nil
}

// DeleteBrokerUsers removes the users ProvisionBrokerUsers made with the same options (a broker found
// running gets them back at the next start; tests).
func DeleteBrokerUsers(ctx context.Context, o BrokerUsersOptions) error {
	s, err := loadBrokerUsers(o.StateFile)
	if err != nil {
		return err
	}
	admin, err := url.Parse(o.AdminURL)
	if err != nil || admin.User == nil {
		return errors.New("broker users: the admin URL carries no user")
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	port := admin.Port()
	if port == "" {
		port = "5672"
	}
	ua, err := chooseUserAdmin(ctx, o, admin, port)
	if err != nil {
		return err
	}
	var errs []error
	for _, u := range []brokerUser{s.Gateway, s.Worker, s.Monitoring} {
		if err := ua.deleteUser(ctx, u.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
