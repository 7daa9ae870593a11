package gateway

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/scrapeplatform/platform/shared/auth"
)

// bearerAuth authenticates as localedge.BearerAuth does (that package imports this one, so the handler's
// tests cannot use it): verify the bearer token, require one of the scopes.
type bearerAuth struct {
	Verifier auth.Verifier
	Scopes   []string
}

func (a bearerAuth) Authenticate(r *http.Request) (Principal, error) {
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
