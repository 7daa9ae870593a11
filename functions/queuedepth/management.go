package queuedepth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxResponseBytes caps what is read of one management API answer.
const maxResponseBytes = 4 << 20

// ErrNotFound means the management API has no such queue (it is declared by the gateway and workers on
// connect, so before their first start it does not exist yet).
var ErrNotFound = errors.New("not found")

// Management is a client of RabbitMQ's management HTTP API (the Amazon MQ web console's API on port 443).
type Management struct {
	base       *url.URL
	user, pass string
	http       *http.Client
}

// NewManagement returns a client of the management API at baseURL, authenticating with HTTP basic auth.
func NewManagement(baseURL, user, pass string, timeout time.Duration) (*Management, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("management URL %q is not an absolute URL", baseURL)
	}
	return &Management{base: u, user: user, pass: pass, http: &http.Client{Timeout: timeout}}, nil
}

// QueueStats is what the management API says about one queue.
type QueueStats struct {
	Ready          int64
	Unacknowledged int64
	Messages       int64
	Consumers      int64
}

// queueJSON is the part of GET /api/queues/{vhost}/{name} this package reads. Counters are absent for a
// moment after a queue is created, which decodes as zero.
type queueJSON struct {
	Name                   string `json:"name"`
	MessagesReady          int64  `json:"messages_ready"`
	MessagesUnacknowledged int64  `json:"messages_unacknowledged"`
	Messages               int64  `json:"messages"`
	Consumers              int64  `json:"consumers"`
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
	return QueueStats{Ready: q.MessagesReady, Unacknowledged: q.MessagesUnacknowledged, Messages: q.Messages, Consumers: q.Consumers}, nil
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

// get fetches base+path (path already escaped) and returns the body of a 200 answer.
func (m *Management) get(ctx context.Context, path string) ([]byte, error) {
	u, err := url.Parse(m.base.String() + path)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth(m.user, m.pass)
	req.Header.Set("Accept", "application/json")
	resp, err := m.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return body, nil
	case resp.StatusCode == http.StatusNotFound:
		return nil, ErrNotFound
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, errors.New("management API refused the credentials (401)")
	default:
		return nil, fmt.Errorf("management API answered %s", resp.Status)
	}
}
