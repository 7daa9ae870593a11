package s3test

import (
	"bytes"
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

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
