package stack

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/scrapeplatform/platform/shared/brokerusers"
)

// Least-privilege broker users (issue 11). The platform's processes never use the broker's administrator:
// ProvisionBrokerUsers creates, through the management HTTP API and with the administrator credentials the
// stack was given (RABBITMQ_URL), three users with generated passwords, with the grants of
// shared/brokerusers (the one owner of what they may do; the BrokerUsers custom resource makes the same
// users in AWS):
//
//   - the gateway's and the workers': configure, write and read limited to the task queue's names, the
//     server-named queues, the default exchange and direct reply-to (brokerusers.Permissions);
//   - a monitoring one for the queue-depth Lambda: tags monitoring and policymaker, no AMQP permission;
//   - a status one for the gateway's GET /status (in_flight and capacity, read from the task queue's
//     consumers): tag monitoring alone (it reads the management API and can set no policy), no AMQP
//     permission.
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
	StatusUser, StatusPass         string
}

// brokerUserState is the StateFile's content.
type brokerUserState struct {
	Gateway, Worker, Monitoring, Status brokerUser
}

// roleUser is one of the state's users and its role (whose name is also the user's name's suffix).
type roleUser struct {
	user *brokerUser
	role brokerusers.Role
}

// users lists the state's users with their roles, in the order they are provisioned.
func (s *brokerUserState) users() []roleUser {
	return []roleUser{{&s.Gateway, brokerusers.Gateway}, {&s.Worker, brokerusers.Worker},
		{&s.Monitoring, brokerusers.Monitoring}, {&s.Status, brokerusers.Status}}
}

type brokerUser struct{ Name, Password string }

// BrokerPermissions are the configure, write and read regular expressions of the gateway's and the
// workers' users for taskQueue (brokerusers.Permissions).
func BrokerPermissions(taskQueue string) (configure, write, read string) {
	return brokerusers.Permissions(taskQueue)
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
	for _, u := range state.users() {
		g, err := brokerusers.For(u.role, o.TaskQueue)
		if err != nil {
			return BrokerUsers{}, err
		}
		if err := ua.PutUser(ctx, u.user.Name, u.user.Password, g.Tags); err != nil {
			return BrokerUsers{}, err
		}
		if err := ua.PutPermissions(ctx, vhost, u.user.Name, g.Configure, g.Write, g.Read); err != nil {
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
		StatusUser: state.Status.Name, StatusPass: state.Status.Password,
	}, nil
}

// loadBrokerUsers reads the state file, or creates it with new names and passwords. A user the file lacks
// (a file written before that user was one of the stack's) gets them, and the others keep theirs: a
// process still connected as one of them keeps working.
func loadBrokerUsers(path string) (brokerUserState, error) {
	var s brokerUserState
	b, err := os.ReadFile(path)
	if err == nil {
		if json.Unmarshal(b, &s) != nil {
			s = brokerUserState{}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return s, fmt.Errorf("broker users: %w", err)
	}
	abs, _ := filepath.Abs(path)
	sum := sha256.Sum256([]byte(abs))
	prefix := "scrape-" + hex.EncodeToString(sum[:4]) + "-"
	added := false
	for _, u := range s.users() {
		if u.user.Name != "" && u.user.Password != "" {
			continue
		}
		var p [24]byte
		_, _ = rand.Read(p[:])
		*u.user = brokerUser{Name: prefix + string(u.role), Password: hex.EncodeToString(p[:])}
		added = true
	}
	if !added {
		return s, nil
	}
	b, _ = json.MarshalIndent(s, "", "  ")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return s, fmt.Errorf("broker users: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return s, fmt.Errorf("broker users: %w", err)
	}
	return s, nil
}

// userAdmin makes users: through the management API (*brokerusers.Client) or rabbitmqctl (ctlAdmin).
type userAdmin interface {
	PutUser(ctx context.Context, name, password, tags string) error
	PutPermissions(ctx context.Context, vhost, name, configure, write, read string) error
	DeleteUser(ctx context.Context, name string) error
	AMQPPorts(ctx context.Context) ([]string, error)
	String() string
}

// chooseUserAdmin picks the management API, else rabbitmqctl, and checks that the broker it reaches is
// the one at the AMQP URL (it listens on port): a management API or a local node that belongs to another
// broker is never changed.
func chooseUserAdmin(ctx context.Context, o BrokerUsersOptions, admin *url.URL, port string) (userAdmin, error) {
	pass, _ := admin.User.Password()
	var candidates []userAdmin
	if o.ManagementURL != "" {
		candidates = append(candidates, brokerusers.NewClient(o.ManagementURL, admin.User.Username(), pass, &http.Client{Timeout: o.Timeout}))
	}
	if len(o.Ctl) > 0 {
		candidates = append(candidates, ctlAdmin{cmd: o.Ctl, timeout: 4 * o.Timeout})
	}
	var errs []error
	for _, c := range candidates {
		ports, err := c.AMQPPorts(ctx)
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

func (c ctlAdmin) PutUser(ctx context.Context, name, password, tags string) error {
	if _, err := c.run(ctx, "", "add_user", name, password); err != nil {
		if _, err2 := c.run(ctx, "", "change_password", name, password); err2 != nil {
			return fmt.Errorf("%w; %w", err, err2)
		}
	}
	_, err := c.run(ctx, "", append([]string{"set_user_tags", name}, strings.FieldsFunc(tags, func(r rune) bool { return r == ',' || r == ' ' })...)...)
	return err
}

func (c ctlAdmin) PutPermissions(ctx context.Context, vhost, name, configure, write, read string) error {
	_, err := c.run(ctx, "", "set_permissions", "-p", vhost, name, configure, write, read)
	return err
}

func (c ctlAdmin) DeleteUser(ctx context.Context, name string) error {
	_, err := c.run(ctx, "", "delete_user", name)
	return err
}

var listenerPort = regexp.MustCompile(`port: (\d+), protocol: amqp`)

func (c ctlAdmin) AMQPPorts(ctx context.Context) ([]string, error) {
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
	for _, u := range s.users() {
		if err := ua.DeleteUser(ctx, u.user.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
