package telemetry

import "sync"

// DefaultMaxClients is METRICS_MAX_CLIENTS' default: how many distinct client_id label values a counter
// keeps before it counts the rest as OtherClient.
const DefaultMaxClients = 50

// OtherClient is the client_id of every client past the cap, and of a task without an owner.
const OtherClient = "other"

// ClientLabels bounds the cardinality of a client_id label (issue 10: scraping_requests_total carries the
// job owner as client_id): the first max distinct owners keep their own value, later ones share
// OtherClient, so a flood of clients cannot blow up the metric's series. Safe for concurrent use.
type ClientLabels struct {
	max  int
	mu   sync.Mutex
	seen map[string]struct{}
}

// NewClientLabels returns labels capped at max distinct values (max < 0: DefaultMaxClients; 0: every
// client is OtherClient).
func NewClientLabels(max int) *ClientLabels {
	if max < 0 {
		max = DefaultMaxClients
	}
	return &ClientLabels{max: max, seen: map[string]struct{}{}}
}

// Label returns the client_id label value of owner.
func (c *ClientLabels) Label(owner string) string {
	if owner == "" || owner == OtherClient {
		return OtherClient
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[owner]; ok {
		return owner
	}
	if len(c.seen) >= c.max {
		return OtherClient
	}
	c.seen[owner] = struct{}{}
	return owner
}
