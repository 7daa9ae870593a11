package repository

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/scrapeplatform/platform/shared/s3client"
)

// S3Config locates the S3 repository: bundles are objects <Prefix><name>.tar.gz in Bucket.
type S3Config struct {
	Bucket string
	// Prefix is prepended to every key; a missing trailing "/" is added (default "scripts/").
	Prefix string
	// Region may be empty: the SDK's default chain (AWS_REGION, shared config) decides; with an Endpoint
	// it defaults to us-east-1.
	Region string
	// AccessKey and SecretKey are static credentials; without them the SDK's default chain is used (the
	// environment, shared files, the ECS task role, instance metadata).
	AccessKey string
	SecretKey string
	// Endpoint overrides the S3 endpoint (an S3-compatible server such as versitygw or MinIO); addressing
	// is then path-style.
	Endpoint string
	// WrapHTTPClient, when set, wraps the SDK's HTTP client (scrapectl counts upload progress with it).
	WrapHTTPClient func(aws.HTTPClient) aws.HTTPClient
}

// DefaultS3Prefix is S3_PREFIX's default.
const DefaultS3Prefix = "scripts/"

// NewS3Client builds an S3 client from cfg (shared/s3client).
func NewS3Client(ctx context.Context, cfg S3Config) (*s3.Client, error) {
	return s3client.New(ctx, s3client.Config{Region: cfg.Region, AccessKey: cfg.AccessKey, SecretKey: cfg.SecretKey,
		Endpoint: cfg.Endpoint, WrapHTTPClient: cfg.WrapHTTPClient})
}

// S3Version is the script version of an S3 object: its VersionId in a versioned bucket, otherwise
// "etag:" and its ETag.
func S3Version(versionID, etag string) string {
	if versionID != "" && versionID != "null" {
		return versionID
	}
	return "etag:" + strings.Trim(etag, `"`)
}

// BundleSHA256Metadata is the user-metadata key (x-amz-meta-sha256) under which scrapectl stores a
// bundle's SHA-256 (hex); the worker checks downloads against it.
const BundleSHA256Metadata = "sha256"

// s3Source fetches bundles from S3.
type s3Source struct {
	client   *s3.Client
	bucket   string
	prefix   string
	maxBytes int64
}

func (s *s3Source) describe() string { return fmt.Sprintf("s3://%s/%s", s.bucket, s.prefix) }

// fetch asks for the object's metadata first (one small request when nothing changed), then downloads
// exactly the version it saw: by VersionId in a versioned bucket, with If-Match on the ETag otherwise, so
// an object replaced in between is never mixed up with the version reported.
func (s *s3Source) fetch(ctx context.Context, name string, have remoteState) (fetched, error) {
	key := bundleKey(s.prefix, name)
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if isS3NotFound(err) {
		// A missing bucket also answers HEAD with a bare 404: tell the two apart.
		if _, berr := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket}); berr != nil {
			return fetched{}, fmt.Errorf("bucket %s: %w", s.bucket, berr)
		}
		return fetched{}, ErrNotFound
	}
	if err != nil {
		return fetched{}, fmt.Errorf("head s3://%s/%s: %w", s.bucket, key, err)
	}
	versionID, etag := aws.ToString(head.VersionId), aws.ToString(head.ETag)
	state := remoteState{Version: S3Version(versionID, etag), Validator: versionID + "|" + etag}
	if have.Validator == state.Validator {
		return fetched{state: state}, nil
	}
	if size := aws.ToInt64(head.ContentLength); size > s.maxBytes {
		return fetched{}, fmt.Errorf("%w: s3://%s/%s is %d bytes; the limit is %d", ErrInvalidBundle, s.bucket, key, size, s.maxBytes)
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	if versionID != "" && versionID != "null" {
		in.VersionId = &versionID
	} else {
		in.IfMatch = &etag
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return fetched{}, fmt.Errorf("get s3://%s/%s: %w", s.bucket, key, err)
	}
	return fetched{
		state:  state,
		body:   out.Body,
		gzip:   true,
		size:   aws.ToInt64(out.ContentLength),
		sha256: out.Metadata[BundleSHA256Metadata],
	}, nil
}

// isS3NotFound reports a missing object (or bucket).
func isS3NotFound(err error) bool {
	return s3client.IsNotFound(err) || s3client.HTTPStatus(err) == http.StatusNotFound
}
