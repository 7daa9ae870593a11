package auth

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims is what the gateway knows about an authenticated caller. It is the same whether API Gateway's
// authorizer or a local Verifier checked the token.
type Claims struct {
	// Subject is the "sub" claim: who the caller is. Never empty on a verified token.
	Subject string
	// Issuer is the "iss" claim.
	Issuer string
	// Audience is the "aud" claim (a single string on the wire is read as a one-element list).
	Audience []string
	// ExpiresAt is the "exp" claim.
	ExpiresAt time.Time
	// Scopes come from "scope" (space-separated) or, when that is absent, "scp" (string or array).
	Scopes []string
	// ClientID is the "client_id" claim (an OAuth client's token, e.g. Cognito's access tokens), if any.
	ClientID string
}

// HasScope reports whether the claims grant scope s.
func (c Claims) HasScope(s string) bool {
	for _, have := range c.Scopes {
		if have == s {
			return true
		}
	}
	return false
}

// wireClaims is the JSON shape of a token's payload as this package reads it.
type wireClaims struct {
	jwt.RegisteredClaims
	Scope scopeList `json:"scope,omitempty"`
	Scp   scopeList `json:"scp,omitempty"`
	// ClientID is Cognito's access-token claim naming the app client; such tokens carry no "aud".
	ClientID string `json:"client_id,omitempty"`
}

func (w *wireClaims) claims() Claims {
	c := Claims{
		Subject:  w.Subject,
		Issuer:   w.Issuer,
		Audience: append([]string(nil), w.Audience...),
		Scopes:   w.Scope,
		ClientID: w.ClientID,
	}
	if len(c.Scopes) == 0 {
		c.Scopes = w.Scp
	}
	if w.ExpiresAt != nil {
		c.ExpiresAt = w.ExpiresAt.Time
	}
	return c
}

// scopeList reads a scope claim written either as one space-separated string or as an array of strings.
type scopeList []string

var errScopeType = errors.New("scope claim must be a string or an array of strings")

func (s *scopeList) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	var out []string
	switch v := v.(type) {
	case nil:
	case string:
		out = strings.Fields(v)
	case []any:
		for _, e := range v {
			str, ok := e.(string)
			if !ok {
				return errScopeType
			}
			out = append(out, strings.Fields(str)...)
		}
	default:
		return errScopeType
	}
	*s = out
	return nil
}
