// Package brokerusers is the BrokerUsers CloudFormation custom resource (issue 11): Amazon MQ's
// CloudFormation resource creates one RabbitMQ user, an administrator; this resource makes, with that
// administrator's credentials and through the broker's management API, the least-privilege users of the
// gateway Lambda, the Fargate workers and the queue-depth Lambda, with the grants of shared/brokerusers.
//
// Resource properties (all strings, as CloudFormation passes them):
//
//	ManagementURL   the management API, e.g. https://b-….mq.eu-west-1.on.aws
//	AdminSecretArn  the administrator's secret ({"username","password"})
//	TaskQueue       the task queue the gateway's and the workers' users are limited to
//	Vhost           the virtual host (default "/")
//	Users           [{"Role": "gateway"|"worker"|"monitoring", "SecretArn": …}]: each user's secret
//
// Create and Update read the secrets and PUT every user (tags, password) and its permissions; the
// physical resource id is "broker-users-<TaskQueue>" from the Create on and never changes, so CloudFormation
// never sends the cleanup Delete of a replacement that would remove the users an Update just made. An
// Update also deletes the users of the old properties whose names are gone. Delete removes the users; it
// succeeds, logging, when the broker or the secrets are already gone. No error or log line ever holds a
// password.
package brokerusers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/cfn"

	"github.com/scrapeplatform/platform/functions/brokersecret"
	users "github.com/scrapeplatform/platform/shared/brokerusers"
)

// Properties are the custom resource's properties.
type Properties struct {
	ManagementURL  string
	AdminSecretArn string
	TaskQueue      string
	Vhost          string
	Users          []User
}

// User is one role's user: its credentials are in the secret SecretArn.
type User struct {
	Role      string
	SecretArn string
}

// ParseProperties decodes and checks CloudFormation's ResourceProperties (ServiceToken and unknown keys are
// ignored).
func ParseProperties(m map[string]any) (Properties, error) {
	var p Properties
	b, err := json.Marshal(m)
	if err != nil {
		return p, fmt.Errorf("resource properties: %w", err)
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("resource properties: %w", err)
	}
	if p.Vhost == "" {
		p.Vhost = "/"
	}
	var errs []error
	if u, err := url.Parse(p.ManagementURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		errs = append(errs, errors.New("property ManagementURL must be an http(s) URL without credentials"))
	}
	if p.AdminSecretArn == "" {
		errs = append(errs, errors.New("property AdminSecretArn is required"))
	}
	if p.TaskQueue == "" {
		errs = append(errs, errors.New("property TaskQueue is required"))
	}
	if len(p.Users) == 0 {
		errs = append(errs, errors.New("property Users is empty"))
	}
	for i, u := range p.Users {
		if _, err := users.For(users.Role(u.Role), p.TaskQueue); err != nil {
			errs = append(errs, fmt.Errorf("property Users[%d]: %w", i, err))
		}
		if u.SecretArn == "" {
			errs = append(errs, fmt.Errorf("property Users[%d] (%s): SecretArn is required", i, u.Role))
		}
	}
	if len(errs) > 0 {
		return p, fmt.Errorf("resource properties: %w", errors.Join(errs...))
	}
	return p, nil
}

// PhysicalID is the resource's physical id, set at Create.
func PhysicalID(p Properties) string { return "broker-users-" + p.TaskQueue }

// Provisioner handles the custom resource's events.
type Provisioner struct {
	// Secrets reads the administrator's and the users' secrets.
	Secrets brokersecret.SecretGetter
	// HTTP makes the management API calls (nil: a client with a 10 s timeout).
	HTTP *http.Client
	// Log receives what a Delete could not do (nil: slog.Default()).
	Log *slog.Logger
}

// Lambda is the Lambda handler: Handle, wrapped by cfn.LambdaWrap, which PUTs the SUCCESS or FAILED
// response to the event's presigned ResponseURL.
func (p *Provisioner) Lambda() cfn.CustomResourceLambdaFunction { return cfn.LambdaWrap(p.Handle) }

// responseMargin is the time kept before the Lambda's deadline to send the response: a custom resource
// whose Lambda times out without answering keeps CloudFormation waiting for an hour.
const responseMargin = 5 * time.Second

// Handle carries out one CloudFormation request and returns the physical resource id.
func (p *Provisioner) Handle(ctx context.Context, ev cfn.Event) (string, map[string]any, error) {
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-responseMargin))
		defer cancel()
	}
	switch ev.RequestType {
	case cfn.RequestCreate, cfn.RequestUpdate:
		props, err := ParseProperties(ev.ResourceProperties)
		if err != nil {
			return ev.PhysicalResourceID, nil, err
		}
		id := ev.PhysicalResourceID
		if ev.RequestType == cfn.RequestCreate || id == "" {
			id = PhysicalID(props)
		}
		names, err := p.Put(ctx, props)
		if err != nil {
			return id, nil, err
		}
		if ev.RequestType == cfn.RequestUpdate {
			p.deleteGone(ctx, ev.OldResourceProperties, props, names)
		}
		return id, nil, nil
	case cfn.RequestDelete:
		props, err := ParseProperties(ev.ResourceProperties)
		if err != nil {
			p.log().Warn("broker users: delete: nothing to delete", "error", err)
			return ev.PhysicalResourceID, nil, nil
		}
		return ev.PhysicalResourceID, nil, p.Delete(ctx, props, nil)
	}
	return ev.PhysicalResourceID, nil, fmt.Errorf("unknown request type %q", ev.RequestType)
}

func (p *Provisioner) log() *slog.Logger {
	if p.Log != nil {
		return p.Log
	}
	return slog.Default()
}

func (p *Provisioner) client(ctx context.Context, props Properties) (*users.Client, error) {
	admin, err := brokersecret.Fetch(ctx, p.Secrets, props.AdminSecretArn)
	if err != nil {
		return nil, fmt.Errorf("administrator: %w", err)
	}
	hc := p.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return users.NewClient(props.ManagementURL, admin.Username, admin.Password, hc), nil
}

// Put creates or updates every user of props (password, tags, permissions) and returns their names.
func (p *Provisioner) Put(ctx context.Context, props Properties) ([]string, error) {
	mc, err := p.client(ctx, props)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, u := range props.Users {
		creds, err := brokersecret.Fetch(ctx, p.Secrets, u.SecretArn)
		if err != nil {
			return nil, fmt.Errorf("%s user: %w", u.Role, err)
		}
		g, err := users.For(users.Role(u.Role), props.TaskQueue)
		if err != nil {
			return nil, err
		}
		if err := mc.PutUser(ctx, creds.Username, creds.Password, g.Tags); err != nil {
			return nil, fmt.Errorf("%s user %s: %s: %w", u.Role, creds.Username, mc, redact(err, creds.Password))
		}
		if err := mc.PutPermissions(ctx, props.Vhost, creds.Username, g.Configure, g.Write, g.Read); err != nil {
			return nil, fmt.Errorf("%s user %s: permissions in vhost %s: %s: %w", u.Role, creds.Username, props.Vhost, mc, redact(err, creds.Password))
		}
		names = append(names, creds.Username)
	}
	return names, nil
}

// Delete deletes the users of props but those named in keep. A user already gone is no error; neither is a
// broker or a secret that is gone or unreachable (logged): only a management API that answers and refuses
// fails it.
func (p *Provisioner) Delete(ctx context.Context, props Properties, keep []string) error {
	log := p.log()
	mc, err := p.client(ctx, props)
	if err != nil {
		log.Warn("broker users: delete: cannot read the administrator's secret; the users are left as they are", "error", err)
		return nil
	}
	var errs []error
	for _, u := range props.Users {
		creds, err := brokersecret.Fetch(ctx, p.Secrets, u.SecretArn)
		if err != nil {
			log.Warn("broker users: delete: cannot read the user's secret; the user is left as it is", "role", u.Role, "error", err)
			continue
		}
		if slices.Contains(keep, creds.Username) {
			continue
		}
		err = mc.DeleteUser(ctx, creds.Username)
		var se *users.StatusError
		switch {
		case err == nil:
			log.Info("broker users: deleted", "role", u.Role, "user", creds.Username)
		case users.IsNotFound(err):
			log.Info("broker users: already gone", "role", u.Role, "user", creds.Username)
		case errors.As(err, &se):
			errs = append(errs, fmt.Errorf("delete %s user %s: %s: %w", u.Role, creds.Username, mc, err))
		default:
			// No answer: the broker is gone (deleted before this resource, or replaced) or unreachable.
			log.Warn("broker users: delete: the management API does not answer; the user is left as it is",
				"role", u.Role, "user", creds.Username, "api", mc.String(), "error", err)
		}
	}
	return errors.Join(errs...)
}

// deleteGone deletes, after an Update, the users of the old properties that the new ones no longer have
// (e.g. a role's secret replaced with another user name); failures are logged, never fail the Update.
func (p *Provisioner) deleteGone(ctx context.Context, old map[string]any, props Properties, names []string) {
	if len(old) == 0 {
		return
	}
	oldProps, err := ParseProperties(old)
	if err != nil {
		return
	}
	// The old users are reached through the new management URL and administrator: an Update that changes
	// the broker leaves the old broker's users to it.
	oldProps.ManagementURL, oldProps.AdminSecretArn = props.ManagementURL, props.AdminSecretArn
	if err := p.Delete(ctx, oldProps, names); err != nil {
		p.log().Warn("broker users: update: could not delete a user the update no longer has", "error", err)
	}
}

// redact replaces secret in err's text (the management API's error answers are quoted in errors; none is
// known to echo a password, and this keeps it so).
func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "<redacted>"))
}
