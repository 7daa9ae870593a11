package localedge

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/scrapeplatform/platform/functions/gateway"
	"github.com/scrapeplatform/platform/shared/auth"
)

// BearerAuth verifies "Authorization: Bearer <JWT>" itself. It is the local edge's authenticator.
type BearerAuth struct {
	Verifier auth.Verifier
	// Scopes, when set, are required as API Gateway's route authorization scopes are in AWS: the token must
	// grant at least one of them, or the answer is 403.
	Scopes []string
}

var _ gateway.Authenticator = BearerAuth{}

// Authenticate implements gateway.Authenticator.
func (a BearerAuth) Authenticate(r *http.Request) (gateway.Principal, error) {
	token, err := auth.BearerToken(r.Header.Get("Authorization"))
	if err != nil {
		return gateway.Principal{}, err
	}
	claims, err := a.Verifier.Verify(r.Context(), token)
	if err != nil {
		return gateway.Principal{}, err
	}
	if len(a.Scopes) > 0 && !slices.ContainsFunc(a.Scopes, claims.HasScope) {
		return gateway.Principal{}, fmt.Errorf("%w (one of: %s)", gateway.ErrInsufficientScope, strings.Join(a.Scopes, ", "))
	}
	return gateway.Principal{Subject: claims.Subject, Method: "jwt", ClientID: claims.ClientID}, nil
}
