package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/awslabs/aws-lambda-go-api-proxy/core"

	"github.com/scrapeplatform/platform/shared/auth"
)

// Principal is an authenticated caller.
type Principal struct {
	Subject string
	// Method says how the caller was authenticated: "jwt" (verified here), "apigateway-jwt" (verified by
	// API Gateway's JWT authorizer) or "iam" (SigV4, verified by API Gateway).
	Method string
}

// Authenticator authenticates a request. Its error is shown to the client, so it must not leak secrets.
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

// BearerAuth verifies "Authorization: Bearer <JWT>" itself. It is the local mode.
type BearerAuth struct {
	Verifier auth.Verifier
	// Scopes, when set, are required as API Gateway's route authorization scopes are in AWS: the token must
	// grant at least one of them, or the answer is 403.
	Scopes []string
}

// ErrInsufficientScope: the token verified but grants none of the required scopes.
var ErrInsufficientScope = errors.New("the token grants none of the scopes this API requires")

var (
	_ Authenticator = BearerAuth{}
	_ Authenticator = APIGatewayAuth{}
)

// Authenticate implements Authenticator.
func (a BearerAuth) Authenticate(r *http.Request) (Principal, error) {
	token, err := auth.BearerToken(r.Header.Get("Authorization"))
	if err != nil {
		return Principal{}, err
	}
	claims, err := a.Verifier.Verify(r.Context(), token)
	if err != nil {
		return Principal{}, err
	}
	if len(a.Scopes) > 0 && !slices.ContainsFunc(a.Scopes, claims.HasScope) {
		return Principal{}, fmt.Errorf("%w (one of: %s)", ErrInsufficientScope, strings.Join(a.Scopes, ", "))
	}
	return Principal{Subject: claims.Subject, Method: "jwt"}, nil
}

// APIGatewayAuth trusts what API Gateway already verified: the JWT authorizer's claims, or the IAM
// identity of a SigV4-signed request, both read from the request context that httpadapter fills in.
// Requests without that context (which cannot come through API Gateway) are refused, so a handler in this
// mode is never open by mistake.
type APIGatewayAuth struct{}

// Authenticate implements Authenticator.
func (APIGatewayAuth) Authenticate(r *http.Request) (Principal, error) {
	rc, ok := core.GetAPIGatewayV2ContextFromContext(r.Context())
	if !ok || rc.Authorizer == nil {
		return Principal{}, fmt.Errorf("%w: the request carries no API Gateway authorizer context", auth.ErrNoCredentials)
	}
	if jwt := rc.Authorizer.JWT; jwt != nil {
		sub := jwt.Claims["sub"]
		if sub == "" {
			return Principal{}, fmt.Errorf("%w: token has no subject", auth.ErrInvalidToken)
		}
		return Principal{Subject: sub, Method: "apigateway-jwt"}, nil
	}
	if iam := rc.Authorizer.IAM; iam != nil {
		id := iam.UserARN
		if id == "" {
			id = iam.CallerID
		}
		if id == "" {
			return Principal{}, fmt.Errorf("%w: IAM identity missing", auth.ErrInvalidToken)
		}
		return Principal{Subject: id, Method: "iam"}, nil
	}
	return Principal{}, fmt.Errorf("%w: no JWT or IAM authorizer ran for this route", auth.ErrNoCredentials)
}

// authMessage turns an authentication error into the sentence shown to the client.
func authMessage(err error) string {
	switch {
	case errors.Is(err, auth.ErrNoCredentials):
		return "authentication required: send Authorization: Bearer <token>"
	default:
		return "invalid credentials: " + err.Error()
	}
}
