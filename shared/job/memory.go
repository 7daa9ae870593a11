package job

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"sync"
	"time"
)

// Memory is a Store in memory, for unit tests of the packages that use a Store. It runs the same logic as
// S3 over a map, conditional writes included; its result URLs are memory:// URLs nothing can fetch.
type Memory struct{ engine }

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory store keeping jobs for retention (0: forever) by the clock now (nil:
// time.Now).
func NewMemory(retention time.Duration, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{engine{objs: &memObjects{m: map[string]memObject{}}, retention: retention, urlTTL: DefaultResultURLTTL, now: now}}
}

type memObject struct {
	data []byte
	etag string
}

type memObjects struct {
	mu   sync.Mutex
	m    map[string]memObject
	next int
}

func (o *memObjects) get(_ context.Context, key string) ([]byte, string, bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	obj, ok := o.m[key]
	return bytes.Clone(obj.data), obj.etag, ok, nil
}

func (o *memObjects) exists(_ context.Context, key string) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.m[key]
	return ok, nil
}

func (o *memObjects) store(key string, data []byte) {
	o.next++
	o.m[key] = memObject{data: bytes.Clone(data), etag: strconv.Itoa(o.next)}
}

func (o *memObjects) put(_ context.Context, key string, data []byte) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.store(key, data)
	return nil
}

func (o *memObjects) putIfAbsent(_ context.Context, key string, data []byte) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.m[key]; ok {
		return false, nil
	}
	o.store(key, data)
	return true, nil
}

func (o *memObjects) putIfMatch(_ context.Context, key string, data []byte, etag string) (bool, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if obj, ok := o.m[key]; !ok || obj.etag != etag {
		return false, nil
	}
	o.store(key, data)
	return true, nil
}

func (o *memObjects) open(ctx context.Context, key string) (io.ReadCloser, error) {
	data, _, ok, _ := o.get(ctx, key)
	if !ok {
		return nil, ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (o *memObjects) presign(_ context.Context, key string, ttl time.Duration) (string, error) {
	return "memory:///" + key + "?expires=" + strconv.Itoa(int(ttl.Seconds())), nil
}
