package job

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/shared/s3client"
)

// S3 is the Store on S3 or an S3-compatible server (versitygw locally). See the package documentation for
// its object layout; the server must honour If-None-Match: * and If-Match on PutObject (AWS does since
// 2024; versitygw does).
type S3 struct{ engine }

var _ Store = (*S3)(nil)

// NewS3 builds an S3 client from cfg and returns the store over cfg.Bucket.
func NewS3(ctx context.Context, cfg Config) (*S3, error) {
	client, err := newS3Client(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return NewS3WithClient(client, cfg)
}

// NewS3WithClient returns the store over cfg.Bucket through client (cfg's S3_* fields are not used). A
// zero cfg.Retention keeps jobs readable until the bucket's lifecycle deletes them; a zero
// cfg.ResultURLTTL means DefaultResultURLTTL.
func NewS3WithClient(client *s3.Client, cfg Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("job store: no bucket")
	}
	ttl := cfg.ResultURLTTL
	if ttl <= 0 {
		ttl = DefaultResultURLTTL
	}
	objs := &s3Objects{client: client, presigner: s3.NewPresignClient(client), bucket: cfg.Bucket, prefix: s3client.NormalizePrefix(cfg.Prefix)}
	return &S3{engine{objs: objs, retention: cfg.Retention, urlTTL: ttl, now: time.Now}}, nil
}

// newS3Client builds the client (shared/s3client) with a retryer that gives up within a few seconds: a
// gateway answers 503 rather than hang when the store is down.
func newS3Client(ctx context.Context, cfg Config) (*s3.Client, error) {
	client, err := s3client.New(ctx, s3client.Config{Region: cfg.Region, AccessKey: cfg.AccessKey, SecretKey: cfg.SecretKey,
		Endpoint: cfg.Endpoint, MaxAttempts: 3, MaxBackoff: time.Second})
	if err != nil {
		return nil, fmt.Errorf("job store: %w", err)
	}
	return client, nil
}

// s3Objects is the object layer on a bucket.
type s3Objects struct {
	client    *s3.Client
	presigner *s3.PresignClient
	bucket    string
	prefix    string
}

func (o *s3Objects) key(key string) *string { return aws.String(o.prefix + key) }

func (o *s3Objects) get(ctx context.Context, key string) ([]byte, string, bool, error) {
	out, err := o.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &o.bucket, Key: o.key(key)})
	if s3client.IsNotFound(err) {
		return nil, "", false, nil
	}
	if err != nil {
		return nil, "", false, o.fail("get", key, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, "", false, o.fail("read", key, err)
	}
	return data, aws.ToString(out.ETag), true, nil
}

func (o *s3Objects) exists(ctx context.Context, key string) (bool, error) {
	_, err := o.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &o.bucket, Key: o.key(key)})
	if s3client.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, o.fail("head", key, err)
	}
	return true, nil
}

func (o *s3Objects) putObject(ctx context.Context, key string, data []byte, ifNoneMatch, ifMatch *string) error {
	_, err := o.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &o.bucket,
		Key:           o.key(key),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   aws.String("application/json"),
		IfNoneMatch:   ifNoneMatch,
		IfMatch:       ifMatch,
	})
	return err
}

func (o *s3Objects) put(ctx context.Context, key string, data []byte) error {
	if err := o.putObject(ctx, key, data, nil, nil); err != nil {
		return o.fail("put", key, err)
	}
	return nil
}

// conditional runs a conditional put: false on 412 Precondition Failed. AWS answers 409
// ConditionalRequestConflict when another conditional write of the key is in flight: the put is tried
// again, and gives 412 once the other has landed.
func (o *s3Objects) conditional(ctx context.Context, key string, data []byte, ifNoneMatch, ifMatch *string) (bool, error) {
	for attempt := 0; ; attempt++ {
		err := o.putObject(ctx, key, data, ifNoneMatch, ifMatch)
		switch {
		case err == nil:
			return true, nil
		case s3client.HTTPStatus(err) == http.StatusPreconditionFailed:
			return false, nil
		case ifMatch != nil && s3client.IsNotFound(err):
			// AWS answers If-Match on a key that is gone (expired meanwhile) with 404: the condition failed.
			return false, nil
		case s3client.HTTPStatus(err) == http.StatusConflict && attempt < 3:
			select {
			case <-ctx.Done():
				return false, ctx.Err()
			case <-time.After(time.Duration(attempt+1) * 50 * time.Millisecond):
			}
			continue
		}
		return false, o.fail("conditional put", key, err)
	}
}

func (o *s3Objects) putIfAbsent(ctx context.Context, key string, data []byte) (bool, error) {
	return o.conditional(ctx, key, data, aws.String("*"), nil)
}

func (o *s3Objects) putIfMatch(ctx context.Context, key string, data []byte, etag string) (bool, error) {
	return o.conditional(ctx, key, data, nil, aws.String(etag))
}

func (o *s3Objects) open(ctx context.Context, key string) (io.ReadCloser, error) {
	out, err := o.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &o.bucket, Key: o.key(key)})
	if s3client.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return nil, o.fail("get", key, err)
	}
	return out.Body, nil
}

func (o *s3Objects) presign(ctx context.Context, key string, ttl time.Duration) (string, error) {
	req, err := o.presigner.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: &o.bucket, Key: o.key(key)},
		s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("job store: presign %s: %w", key, err)
	}
	return req.URL, nil
}

// fail wraps an S3 error with the operation and key, classified: transient when the store is unreachable,
// overloaded or failing (no answer, 5xx, 429), so callers answer 503; cancellation stays cancellation.
func (o *s3Objects) fail(op, key string, err error) error {
	err = fmt.Errorf("job store: %s s3://%s/%s%s: %w", op, o.bucket, o.prefix, key, err)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if status := s3client.HTTPStatus(err); status == 0 || status >= 500 || status == http.StatusTooManyRequests {
		return contract.Transiently(err)
	}
	return err
}
