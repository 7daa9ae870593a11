package s3test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// TestConditionalWrites checks what the job store relies on: versitygw, as started here, honours
// If-None-Match: * and If-Match on PutObject, answering 412 when the condition fails.
func TestConditionalWrites(t *testing.T) {
	s := Start(t)
	s.CreateBucket(t, "conditional", false)
	c := s.Client()
	ctx := context.Background()
	put := func(ifNoneMatch, ifMatch *string) (*s3.PutObjectOutput, error) {
		return c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("conditional"), Key: aws.String("k"),
			Body: bytes.NewReader([]byte("x")), IfNoneMatch: ifNoneMatch, IfMatch: ifMatch})
	}
	status := func(err error) int {
		var re *awshttp.ResponseError
		if errors.As(err, &re) {
			return re.HTTPStatusCode()
		}
		return 0
	}
	first, err := put(aws.String("*"), nil)
	if err != nil {
		t.Fatalf("create with If-None-Match: *: %v", err)
	}
	if _, err := put(aws.String("*"), nil); status(err) != http.StatusPreconditionFailed {
		t.Fatalf("second create with If-None-Match: *: %v, want 412", err)
	}
	if _, err := put(nil, aws.String(`"not-the-etag"`)); status(err) != http.StatusPreconditionFailed {
		t.Fatalf("replace with a wrong If-Match: %v, want 412", err)
	}
	if _, err := put(nil, first.ETag); err != nil {
		t.Fatalf("replace with the right If-Match: %v", err)
	}
	if got := List(t, s, "conditional"); len(got) != 1 || got[0] != "k" {
		t.Errorf("objects %q", got)
	}
}

// TestServerVersioning checks what the other tests rely on: versitygw's posix backend, as started here,
// gives each write of an object a new VersionId in a versioned bucket and none in an unversioned one.
func TestServerVersioning(t *testing.T) {
	s := Start(t)
	s.CreateBucket(t, "versioned", true)
	s.CreateBucket(t, "plain", false)
	c := s.Client()
	ctx := context.Background()
	for _, bucket := range []string{"versioned", "plain"} {
		var ids []string
		for i := range 2 {
			out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("k"), Body: bytes.NewReader([]byte{byte(i)})})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, aws.ToString(out.VersionId))
		}
		switch {
		case bucket == "versioned" && (ids[0] == "" || ids[0] == ids[1]):
			t.Errorf("versioned bucket: version ids %q", ids)
		case bucket == "plain" && ids[0] != "" && ids[0] != "null":
			t.Errorf("unversioned bucket: version ids %q", ids)
		}
	}
}
