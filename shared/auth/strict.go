package auth

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultMaxTTL is the longest token lifetime accepted when a verifier's MaxTTL is zero: a day, as long as
// the longest-lived ID token Cognito issues. A stolen token is worth no more than its lifetime.
const DefaultMaxTTL = 24 * time.Hour

// knownClaims are the claims this package reads, spelled exactly. encoding/json (which the jwt library
// decodes claims with) matches struct fields case-insensitively, with Unicode folding, so "EXP" or "ſub"
// would otherwise be read as exp and sub; a key that folds to one of these without being it is refused.
var knownClaims = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "scope", "scp", "client_id"}

// numericClaims must be JSON numbers (RFC 7519 NumericDate): the library's NumericDate also takes a string
// holding a number, which no issuer writes.
var numericClaims = map[string]bool{"exp": true, "nbf": true, "iat": true}

// stringClaims must be JSON strings when present.
var stringClaims = map[string]bool{"iss": true, "sub": true, "jti": true, "client_id": true}

// strictRules are the checks a verified token passes on its raw header and claims, beyond the jwt
// library's: every member once, registered claims spelled exactly and typed, and a bounded lifetime.
type strictRules struct {
	maxTTL time.Duration
	leeway time.Duration
	now    func() time.Time
}

// newStrictRules returns the rules for a verifier configured with maxTTL (zero: DefaultMaxTTL).
func newStrictRules(maxTTL, leeway time.Duration, now func() time.Time) (strictRules, error) {
	if maxTTL < 0 {
		return strictRules{}, fmt.Errorf("auth: maximum token lifetime must not be negative, got %v", maxTTL)
	}
	if maxTTL == 0 {
		maxTTL = DefaultMaxTTL
	}
	return strictRules{maxTTL: maxTTL, leeway: leeway, now: now}, nil
}

// check applies the rules to token, whose signature already verified. Its errors are client-safe reasons
// (invalid(...)): they name the rule and the registered claim, never a value of the token.
func (r strictRules) check(token string, wc *wireClaims) error {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return invalid(reasonMalformed, nil)
	}
	header, err1 := base64.RawURLEncoding.Strict().DecodeString(parts[0])
	claims, err2 := base64.RawURLEncoding.Strict().DecodeString(parts[1])
	if err1 != nil || err2 != nil {
		return invalid(reasonMalformed, errors.Join(err1, err2))
	}
	if _, err := members(header, "header"); err != nil {
		return err
	}
	m, err := members(claims, "claim")
	if err != nil {
		return err
	}
	for key, raw := range m {
		for _, known := range knownClaims {
			if key != known && strings.EqualFold(key, known) {
				return invalid(fmt.Sprintf("claim names are case-sensitive: a claim spelled like %q is not %q", known, known), nil)
			}
		}
		first := bytes.TrimSpace(raw)[0]
		switch {
		case numericClaims[key] && (first == '"' || first == '{' || first == '[' || first == 't' || first == 'f' || first == 'n'):
			return invalid(key+" claim must be a number (seconds since the epoch)", nil)
		case stringClaims[key] && first != '"':
			return invalid(key+" claim must be a string", nil)
		}
	}
	return r.checkLifetime(wc)
}

// checkLifetime refuses a token valid for longer than maxTTL: by exp-iat when it has iat, else by exp-now.
func (r strictRules) checkLifetime(wc *wireClaims) error {
	if wc.ExpiresAt == nil {
		return nil // the parser requires exp; nothing to bound
	}
	exp := wc.ExpiresAt.Time
	if wc.IssuedAt != nil {
		if life := exp.Sub(wc.IssuedAt.Time); life > r.maxTTL {
			return invalid(fmt.Sprintf("lifetime of %s (exp - iat) is longer than the maximum of %s", roundLife(life), r.maxTTL), nil)
		}
		return nil
	}
	if left := exp.Sub(r.now()); left > r.maxTTL+r.leeway {
		return invalid(fmt.Sprintf("expires %s from now, later than the maximum lifetime of %s", roundLife(left), r.maxTTL), nil)
	}
	return nil
}

func roundLife(d time.Duration) time.Duration {
	if d > 1000*24*time.Hour {
		return 1000 * 24 * time.Hour // "more than" is clear enough; avoid printing absurd values
	}
	return d.Round(time.Second)
}

// members returns the members of the JSON object doc, refusing one named twice (what names: "header",
// "claim").
func members(doc []byte, what string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, invalid(reasonMalformed, err)
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, invalid(reasonMalformed, err)
		}
		key, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, invalid(reasonMalformed, err)
		}
		if _, dup := out[key]; dup {
			return nil, invalid("a "+what+" appears twice", nil)
		}
		out[key] = raw
	}
	return out, nil
}
