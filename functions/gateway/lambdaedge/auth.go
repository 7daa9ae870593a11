package lambdaedge

import (
	"fmt"
	"net/http"

	"github.com/awslabs/aws-lambda-go-api-proxy/core"

	"github.com/scrapeplatform/platform/functions/gateway"
	"github.com/scrapeplatform/platform/shared/auth"
)

var _ gateway.Authenticator = APIGatewayAuth{}

// APIGatewayAuth trusts what API Gateway already verified: the JWT authorizer's claims, or the IAM
// identity of a SigV4-signed request, both read from the request context that httpadapter fills in.
// Requests without that context (which cannot come through API Gateway) are refused, so a handler in this
// mode is never open by mistake.
type APIGatewayAuth struct{}

// Authenticate implements gateway.Authenticator.
func (APIGatewayAuth) Authenticate(r *http.Request) (gateway.Principal, error) {
	rc, ok := core.GetAPIGatewayV2ContextFromContext(r.Context())
	if !ok || rc.Authorizer == nil {
		return gateway.Principal{}, fmt.Errorf("%w: the request carries no API Gateway authorizer context", auth.ErrNoCredentials)
	}
	if jwt := rc.Authorizer.JWT; jwt != nil {
		sub := jwt.Claims["sub"]
		if sub == "" {
			return gateway.Principal{}, fmt.Errorf("%w: token has no subject", auth.ErrInvalidToken)
		}
		return gateway.Principal{Subject: sub, Method: "apigateway-jwt", ClientID: jwt.Claims["client_id"]}, nil
	}
	if iam := rc.Authorizer.IAM; iam != nil {
		id := iam.UserARN
		if id == "" {
			id = iam.CallerID
		}
		if id == "" {
			return gateway.Principal{}, fmt.Errorf("%w: IAM identity missing", auth.ErrInvalidToken)
		}
		return gateway.Principal{Subject: id, Method: "iam"}, nil
	}
	return gateway.Principal{}, fmt.Errorf("%w: no JWT or IAM authorizer ran for this route", auth.ErrNoCredentials)
}
