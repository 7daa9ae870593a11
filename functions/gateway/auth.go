package gateway

import (
	"errors"
	"net/http"

	"github.com/scrapeplatform/platform/shared/auth"
)

// Principal is an authenticated caller.
type Principal struct {
	Subject string
	// Method says how the caller was authenticated: "jwt" (verified here), "apigateway-jwt" (verified by
	// API Gateway's JWT authorizer) or "iam" (SigV4, verified by API Gateway).
	Method string
	// ClientID is the token's client_id claim (an OAuth client's own token), when it has one: the owner of
	// the caller's jobs; without one the subject owns them.
	ClientID string
}

// Authenticator authenticates a request. Its error is shown to the client, so it must not leak secrets:
// auth.ErrKeysUnavailable answers 503, ErrInsufficientScope 403, anything else 401. The edges implement it
// (localedge.BearerAuth verifies tokens itself; lambdaedge.APIGatewayAuth trusts API Gateway's authorizers).
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

// ErrInsufficientScope: the token verified but grants none of the required scopes. An Authenticator
// returns it (wrapped) for a 403.
var ErrInsufficientScope = errors.New("the token grants none of the scopes this API requires")

// authMessage turns an authentication error into the sentence shown to the client.
func authMessage(err error) string {
	switch {
	case errors.Is(err, auth.ErrNoCredentials):
		return "authentication required: send Authorization: Bearer <token>"
	default:
		return "invalid credentials: " + err.Error()
	}
}
