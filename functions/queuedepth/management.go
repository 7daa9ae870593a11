package queuedepth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/brokerusers"
)

// ErrNotFound means the management API has no such queue (it is declared by the gateway and workers on
// connect, so before their first start it does not exist yet).
var ErrNotFound = errors.New("not found")

// Management reads and sets what the queue-depth function needs through RabbitMQ's management HTTP API (the
// Amazon MQ web console's API on port 443). The HTTP exchange itself (basic auth, JSON, bounded answers,
// status errors) is shared/brokerusers' Client, the platform's one client of that API.
type Management struct {
	api *brokerusers.Client
}

// NewManagement returns a client of the management API at baseURL, authenticating with HTTP basic auth.
func NewManagement(baseURL, user, pass string, timeout time.Duration) (*Management, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("management URL %q is not an absolute URL", baseURL)
	}
	return &Management{api: brokerusers.NewClient(u.String(), user, pass, &http.Client{Timeout: timeout})}, nil
}

// QueueStats is what the management API says about one queue.
type QueueStats struct {
	Ready          int64
	Unacknowledged int64
	Messages       int64
	Consumers      int64
	// Capacity is the sum of the consumers' prefetch counts: how many deliveries the workers take at once
	// now (their admission capacity, issue 12).
	Capacity int64
}

// queueJSON is the part of GET /api/queues/{vhost}/{name} this package reads. Counters are absent for a
// moment after a queue is created, which decodes as zero.
type queueJSON struct {
	Name                   string `json:"name"`
	MessagesReady          int64  `json:"messages_ready"`
	MessagesUnacknowledged int64  `json:"messages_unacknowledged"`
	Messages               int64  `json:"messages"`
	Consumers              int64  `json:"consumers"`
	ConsumerDetails        []struct {
		PrefetchCount int64 `json:"prefetch_count"`
	} `json:"consumer_details"`
}

// DecodeQueue parses a GET /api/queues/{vhost}/{name} answer.
func DecodeQueue(body []byte) (QueueStats, error) {
	var q queueJSON
	if err := json.Unmarshal(body, &q); err != nil {
		return QueueStats{}, fmt.Errorf("decode queue: %w", err)
	}
	if q.MessagesReady < 0 || q.MessagesUnacknowledged < 0 || q.Messages < 0 || q.Consumers < 0 {
		return QueueStats{}, errors.New("decode queue: negative counter")
	}
	var capacity int64
	for _, c := range q.ConsumerDetails {
		if c.PrefetchCount < 0 {
			return QueueStats{}, errors.New("decode queue: negative prefetch count")
		}
		capacity += c.PrefetchCount
	}
	return QueueStats{Ready: q.MessagesReady, Unacknowledged: q.MessagesUnacknowledged, Messages: q.Messages, Consumers: q.Consumers,
		Capacity: capacity}, nil
}

// Queue returns the counters of the queue name in vhost; ErrNotFound when there is no such queue.
func (m *Management) Queue(ctx context.Context, vhost, name string) (QueueStats, error) {
	body, err := m.get(ctx, "/api/queues/"+url.PathEscape(vhost)+"/"+url.PathEscape(name))
	if err != nil {
		return QueueStats{}, fmt.Errorf("queue %q: %w", name, err)
	}
	return DecodeQueue(body)
}

// NodeStats is what the management API says about one broker node.
type NodeStats struct {
	Name      string
	Running   bool
	MemUsed   int64
	MemLimit  int64
	MemAlarm  bool
	DiskAlarm bool
}

type nodeJSON struct {
	Name          string `json:"name"`
	Running       bool   `json:"running"`
	MemUsed       int64  `json:"mem_used"`
	MemLimit      int64  `json:"mem_limit"`
	MemAlarm      bool   `json:"mem_alarm"`
	DiskFreeAlarm bool   `json:"disk_free_alarm"`
}

// DecodeNodes parses a GET /api/nodes answer.
func DecodeNodes(body []byte) ([]NodeStats, error) {
	var raw []nodeJSON
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("decode nodes: %w", err)
	}
	nodes := make([]NodeStats, 0, len(raw))
	for _, n := range raw {
		nodes = append(nodes, NodeStats{Name: n.Name, Running: n.Running, MemUsed: n.MemUsed, MemLimit: n.MemLimit, MemAlarm: n.MemAlarm, DiskAlarm: n.DiskFreeAlarm})
	}
	return nodes, nil
}

// Nodes returns every node of the broker.
func (m *Management) Nodes(ctx context.Context) ([]NodeStats, error) {
	body, err := m.get(ctx, "/api/nodes")
	if err != nil {
		return nil, fmt.Errorf("nodes: %w", err)
	}
	return DecodeNodes(body)
}

// Policy is a RabbitMQ policy as the management API holds it (GET/PUT /api/policies/{vhost}/{name}).
type Policy struct {
	Pattern    string         `json:"pattern"`
	ApplyTo    string         `json:"apply-to"`
	Priority   int            `json:"priority"`
	Definition map[string]any `json:"definition"`
}

// QueueBoundPolicy is the task queue's bound (broker.Topology.BoundPolicy) as a management API policy.
// applyTo is "queues", or "quorum_queues" where the broker knows it (RabbitMQ 3.12 and later; Amazon MQ asks
// for it on quorum-queue policies). priority must beat the policies that also match the queue (see
// broker.BoundPolicyPriority).
func QueueBoundPolicy(queue string, maxLength int64, applyTo string, priority int) Policy {
	_, pattern, definition := broker.NewTopology(queue).BoundPolicy(maxLength)
	return Policy{Pattern: pattern, ApplyTo: applyTo, Priority: priority, Definition: definition}
}

// merge returns have with want's pattern, apply-to, priority and definition keys, keeping the definition
// keys of have that want does not set (merged in by an operator, or added by Amazon MQ); ok reports that
// have already says all of that.
func merge(have, want Policy) (merged Policy, ok bool) {
	merged = Policy{Pattern: want.Pattern, ApplyTo: want.ApplyTo, Priority: want.Priority, Definition: map[string]any{}}
	ok = have.Pattern == want.Pattern && have.ApplyTo == want.ApplyTo && have.Priority == want.Priority
	for k, v := range have.Definition {
		merged.Definition[k] = v
	}
	for k, v := range want.Definition {
		// Through JSON: the management API answers numbers as JSON numbers (float64 after decoding).
		a, errA := json.Marshal(v)
		b, errB := json.Marshal(have.Definition[k])
		if errA != nil || errB != nil || string(a) != string(b) {
			ok = false
		}
		merged.Definition[k] = v
	}
	return merged, ok
}

// EnsurePolicy makes the policy name in vhost say what want says: it reads the current one and writes only
// when it is missing or differs in want's pattern, apply-to, priority or definition keys, keeping other
// definition keys it holds. Running it every minute therefore changes nothing on the broker in the steady
// state, and does not fight someone who merged more keys into the policy. changed reports whether it wrote.
func (m *Management) EnsurePolicy(ctx context.Context, vhost, name string, want Policy) (changed bool, err error) {
	path := "/api/policies/" + url.PathEscape(vhost) + "/" + url.PathEscape(name)
	body, err := m.get(ctx, path)
	var have Policy
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return false, fmt.Errorf("policy %q: %w", name, err)
	default:
		if err := json.Unmarshal(body, &have); err != nil {
			return false, fmt.Errorf("policy %q: decode: %w", name, err)
		}
	}
	merged, ok := merge(have, want)
	if ok {
		return false, nil
	}
	payload, err := json.Marshal(merged)
	if err != nil {
		return false, err
	}
	if err := m.put(ctx, path, payload); err != nil {
		return false, fmt.Errorf("set policy %q: %w", name, err)
	}
	return true, nil
}

// get fetches path (already escaped) and returns the body of a 2xx answer.
func (m *Management) get(ctx context.Context, path string) ([]byte, error) {
	var body json.RawMessage
	if err := m.api.Do(ctx, http.MethodGet, path, nil, &body); err != nil {
		return nil, explain(err)
	}
	return body, nil
}

// put sends payload (JSON) to path (already escaped).
func (m *Management) put(ctx context.Context, path string, payload []byte) error {
	return explain(m.api.Do(ctx, http.MethodPut, path, json.RawMessage(payload), nil))
}

// explain turns the management API's refusals into what the function's operator needs to know: ErrNotFound
// for a 404, and what to do about the credentials or the user's tags.
func explain(err error) error {
	var se *brokerusers.StatusError
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code {
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusUnauthorized:
		return errors.New("management API refused the credentials (401)")
	case http.StatusForbidden:
		return errors.New("management API forbids this to the broker user (403); setting policies needs the policymaker or administrator tag")
	case http.StatusBadRequest:
		return fmt.Errorf("management API refused the request (400): %s", se.Body)
	}
	return fmt.Errorf("management API answered %s", se.Status)
}
