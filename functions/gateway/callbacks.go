package gateway

import (
	"context"
	"log/slog"
	"sync"

	"github.com/scrapeplatform/platform/shared/broker"
	"github.com/scrapeplatform/platform/shared/job"
	"github.com/scrapeplatform/platform/shared/webhook"
)

// OutboxCallbacks returns the Callbacks the edges give the handler: shared/webhook's Outbox on a publisher
// connection of its own, opened on the first cancel that ends a job with a callback_url (most gateway
// instances never see one, so a Lambda instance does not hold a second broker connection for nothing) and
// kept until ctx ends.
func (c Config) OutboxCallbacks(ctx context.Context, name string, log *slog.Logger) Callbacks {
	return &lazyOutbox{ctx: ctx, cfg: broker.PublisherConfig{URL: c.RabbitMQURL, Name: name, Logger: log}, queue: c.TaskQueue}
}

// lazyOutbox starts its publisher on first use.
type lazyOutbox struct {
	ctx   context.Context
	cfg   broker.PublisherConfig
	queue string
	once  sync.Once
	out   *webhook.Outbox
}

// Enqueue implements Callbacks.
func (l *lazyOutbox) Enqueue(ctx context.Context, j job.Job) error {
	l.once.Do(func() {
		p := broker.NewPublisher(l.cfg)
		go func() { _ = p.Run(l.ctx) }()
		l.out = webhook.NewOutbox(p, l.queue)
	})
	return l.out.Enqueue(ctx, j)
}
