package s3client

import (
	"errors"
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// HTTPStatus is the HTTP status of an S3 error, or 0 when no answer came.
func HTTPStatus(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// IsNotFound reports a missing object: the SDK's NotFound or NoSuchKey, in its types or as an API error
// code, or a 404 answer. A missing bucket (NoSuchBucket) is not a missing object but a configuration error.
func IsNotFound(err error) bool {
	if err == nil {
		return false
	}
	var nf *types.NotFound
	var nsk *types.NoSuchKey
	if errors.As(err, &nf) || errors.As(err, &nsk) {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NotFound", "NoSuchKey":
			return true
		case "NoSuchBucket":
			return false
		}
	}
	return HTTPStatus(err) == http.StatusNotFound
}
