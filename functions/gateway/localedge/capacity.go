package localedge

import (
	"context"
	"net/url"
	"time"

	"github.com/scrapeplatform/platform/functions/gateway"
	"github.com/scrapeplatform/platform/functions/queuedepth"
)

// managementCapacity reads the workers' in-flight tasks (the queue's unacknowledged messages) and capacity
// (the sum of their consumers' prefetch) from the broker's management API, for GET /status.
type managementCapacity struct {
	m *queuedepth.Management
}

var _ gateway.CapacityReader = managementCapacity{}

// newManagementCapacity returns the reader of rawURL (http://user:password@host:port), or nil without one.
func newManagementCapacity(rawURL string) (gateway.CapacityReader, error) {
	if rawURL == "" {
		return nil, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	pass, _ := u.User.Password()
	user := u.User.Username()
	u.User = nil
	m, err := queuedepth.NewManagement(u.String(), user, pass, 3*time.Second)
	if err != nil {
		return nil, err
	}
	return managementCapacity{m: m}, nil
}

// Capacity implements gateway.CapacityReader.
func (c managementCapacity) Capacity(ctx context.Context, queue string) (inFlight, capacity int64, err error) {
	q, err := c.m.Queue(ctx, "/", queue)
	if err != nil {
		return 0, 0, err
	}
	return q.Unacknowledged, q.Capacity, nil
}
