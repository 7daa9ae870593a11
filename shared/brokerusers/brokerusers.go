// Package brokerusers is the one owner of what the platform's least-privilege RabbitMQ users are (issue 11):
// the permissions of the gateway's and the workers' users on the task queue, the monitoring user of the
// queue-depth Lambda, and a minimal management HTTP API client to create and delete them with, which is
// also the platform's one client of that API (functions/queuedepth reads queues and nodes and keeps the
// task queue's policy through it).
//
// `make run` (local/stack) and the BrokerUsers CloudFormation custom resource in AWS
// (functions/brokerusers) both make their users from this table:
//
//   - the gateway's: configure, write and read limited to the task queue's names (<task>, <task>.dlx,
//     <task>.dead, <task>.cancel, <task>.lease, <task>.webhooks*: `^<task>(\..*)?$`), the server-named
//     queues it declares (amq.gen-*), the default exchange it publishes tasks through (amq.default, write)
//     and the direct reply-to pseudo-queue (amq.rabbitmq.reply-to, read); no tags (no management API);
//   - the workers': the same resources (they declare the topology, consume the task queue, reply through
//     the default exchange, bind a server-named queue to the cancel exchange);
//   - the monitoring one: tags monitoring (read the management API: queues, consumers, nodes) and
//     policymaker (it keeps the task queue's bound policy), and no AMQP resource at all (`^$`);
//   - the status one, for the local gateway's GET /status (`make run`, compose: in_flight and capacity
//     from the task queue's consumers): tag monitoring only, so it reads the management API and can set
//     no policy, and no AMQP resource. In AWS the gateway reads no management API and has no such user.
package brokerusers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Role is a platform process that gets a broker user of its own.
type Role string

// The roles.
const (
	Gateway    Role = "gateway"
	Worker     Role = "worker"
	Monitoring Role = "monitoring"
	Status     Role = "status"
)

// Roles lists the roles every deployment provisions (make run, compose and the BrokerUsers custom resource
// in AWS), in that order. Status is the local stacks' only: in AWS the gateway reads no management API.
var Roles = []Role{Gateway, Worker, Monitoring}

// Grant is what a role's user may do: its management tags (comma-separated, "" for none) and its
// configure, write and read permissions in the virtual host.
type Grant struct {
	Tags                   string
	Configure, Write, Read string
}

// NoAccess is the permission regular expression that matches no resource.
const NoAccess = "^$"

// Permissions are the configure, write and read regular expressions of the gateway's and the workers'
// users for taskQueue.
func Permissions(taskQueue string) (configure, write, read string) {
	q := regexp.QuoteMeta(taskQueue)
	configure = `^(` + q + `(\..*)?|amq\.gen-.*)$`
	write = `^(` + q + `(\..*)?|amq\.gen-.*|amq\.default)$`
	read = `^(` + q + `(\..*)?|amq\.gen-.*|amq\.rabbitmq\.reply-to.*)$`
	return configure, write, read
}

// For returns role's grant for taskQueue; an unknown role is an error.
func For(role Role, taskQueue string) (Grant, error) {
	switch role {
	case Gateway, Worker:
		c, w, r := Permissions(taskQueue)
		return Grant{Configure: c, Write: w, Read: r}, nil
	case Monitoring:
		return Grant{Tags: "monitoring,policymaker", Configure: NoAccess, Write: NoAccess, Read: NoAccess}, nil
	case Status:
		return Grant{Tags: "monitoring", Configure: NoAccess, Write: NoAccess, Read: NoAccess}, nil
	}
	return Grant{}, fmt.Errorf("unknown broker user role %q (want one of %v)", role, append(slices.Clone(Roles), Status))
}

// Client is a minimal RabbitMQ management HTTP API client, authenticated as an administrator.
type Client struct {
	base, user, pass string
	http             *http.Client
}

// NewClient returns a client of the management API at base (e.g. http://127.0.0.1:15672 or
// https://b-….mq.<region>.on.aws) that authenticates as user; hc bounds its calls (nil: http.DefaultClient).
func NewClient(base, user, pass string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimRight(base, "/"), user: user, pass: pass, http: hc}
}

// String names the API; it never includes the credentials.
func (c *Client) String() string { return "the management API at " + c.base }

// StatusError is a management API answer other than 2xx.
type StatusError struct {
	Method, Path string
	Code         int
	Status, Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s: %s: %s", e.Method, e.Path, e.Status, e.Body)
}

// IsNotFound says whether err is a management API 404.
func IsNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

// PutUser creates or updates the user name with password and tags (comma- or space-separated).
func (c *Client) PutUser(ctx context.Context, name, password, tags string) error {
	tags = strings.Join(strings.FieldsFunc(tags, func(r rune) bool { return r == ',' || r == ' ' }), ",")
	return c.Do(ctx, http.MethodPut, "/api/users/"+url.PathEscape(name), map[string]string{"password": password, "tags": tags}, nil)
}

// PutPermissions sets the user's configure, write and read permissions in vhost.
func (c *Client) PutPermissions(ctx context.Context, vhost, name, configure, write, read string) error {
	return c.Do(ctx, http.MethodPut, "/api/permissions/"+url.PathEscape(vhost)+"/"+url.PathEscape(name),
		map[string]string{"configure": configure, "write": write, "read": read}, nil)
}

// DeleteUser deletes the user name (a user that does not exist is a *StatusError with Code 404).
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/api/users/"+url.PathEscape(name), nil, nil)
}

// AMQPPorts are the broker's AMQP (and AMQPS) listener ports.
func (c *Client) AMQPPorts(ctx context.Context) ([]string, error) {
	var overview struct {
		Listeners []struct {
			Protocol string
			Port     int
		}
	}
	if err := c.Do(ctx, http.MethodGet, "/api/overview", nil, &overview); err != nil {
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

// maxBody bounds the JSON answer Do decodes (GET /api/nodes of a cluster, with every node's statistics, is
// the largest the platform reads); maxErrorBody the part of an error answer it quotes.
const (
	maxBody      = 4 << 20
	maxErrorBody = 512
)

// Do sends body (JSON, nil for none) with method to path and decodes the JSON answer into out (nil: the
// answer is discarded). An answer other than 2xx is a *StatusError quoting the start of its body (the
// management API's error answers never echo a request's password).
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.user, c.pass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer func() {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return &StatusError{Method: method, Path: path, Code: resp.StatusCode, Status: resp.Status, Body: string(bytes.TrimSpace(msg))}
	}
	if out != nil {
		return json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(out)
	}
	return nil
}
