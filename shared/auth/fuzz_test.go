package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// FuzzVerify feeds arbitrary strings to Verify. Each input is tried twice: as is (which exercises the
// decoding and signature paths) and with its first two segments re-signed under the test secret (which gets
// past the signature, so the fuzzer explores headers and claims the verifier then has to judge on their own).
//
// Properties: Verify never panics; every rejection wraps ErrInvalidToken and does not echo the input; every
// accepted token has alg HS256, no crit header, a subject, and an expiry not yet passed (allowing the
// configured leeway, which is what "in the future" means to a verifier that tolerates clock skew).
func FuzzVerify(f *testing.F) {
	seed := func(c jwt.MapClaims) string { return signHS(f, jwt.SigningMethodHS256, c) }
	valid := seed(validClaims())
	for _, s := range []string{
		valid,
		seed(with(validClaims(), "exp", testNow.Add(-time.Hour).Unix())),
		seed(with(validClaims(), "exp", 1e300)),
		seed(with(validClaims(), "exp", -1e300)),
		seed(with(validClaims(), "nbf", testNow.Add(time.Hour).Unix())),
		seed(without(validClaims(), "sub")),
		seed(without(validClaims(), "exp")),
		seed(with(validClaims(), "scp", []any{"a", 1})),
		seed(with(validClaims(), "aud", []any{testAudience, nil})),
		craft(f, map[string]any{"alg": "none"}, validClaims(), nil),
		craft(f, map[string]any{"alg": "HS256", "crit": []string{"b64"}}, validClaims(), nil),
		signHS(f, jwt.SigningMethodHS512, validClaims()),
		valid[:len(valid)-4] + "AAAA",
		"",
		".",
		"..",
		"e30.e30.",
		"eyJhbGciOiJIUzI1NiJ9.bnVsbA.",
		"garbage",
		// Strict claims (issue 11): case-folded and duplicate members, string dates, long lifetimes.
		rawToken(`{"alg":"HS256"}`, `{"SUB":"u","EXP":1893553445}`),
		rawToken(`{"alg":"HS256"}`, `{"sub":"u","ſub":"v","exp":1893553445}`),
		rawToken(`{"alg":"HS256"}`, `{"sub":"u","exp":"1893553445"}`),
		rawToken(`{"alg":"HS256"}`, `{"sub":"u","sub":"v","exp":1893553445}`),
		rawToken(`{"alg":"HS256","alg":"none"}`, `{"sub":"u","exp":1893553445}`),
		seed(with(validClaims(), "exp", testNow.Add(30*24*time.Hour).Unix())),
		seed(without(with(validClaims(), "exp", testNow.Add(30*24*time.Hour).Unix()), "iat")),
	} {
		f.Add(s)
	}
	v := newTestVerifier(f, nil)
	leeway := DefaultLeeway

	f.Fuzz(func(t *testing.T, token string) {
		check := func(tok string) {
			c, err := v.Verify(context.Background(), tok)
			if err != nil {
				if !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("error %v does not wrap ErrInvalidToken", err)
				}
				if len(tok) >= 8 && strings.Contains(err.Error(), tok) {
					t.Fatalf("error %q echoes the token", err)
				}
				return
			}
			if c.Subject == "" {
				t.Fatalf("accepted a token without a subject: %q", tok)
			}
			if !testNow.Before(c.ExpiresAt.Add(leeway)) {
				t.Fatalf("accepted a token that expired at %v (now %v): %q", c.ExpiresAt, testNow, tok)
			}
			if c.ExpiresAt.Sub(testNow) > DefaultMaxTTL+leeway {
				t.Fatalf("accepted a token that expires %v from now: %q", c.ExpiresAt.Sub(testNow), tok)
			}
			header := decodeHeader(t, tok)
			if header["alg"] != "HS256" {
				t.Fatalf("accepted alg %v: %q", header["alg"], tok)
			}
			if _, ok := header["crit"]; ok {
				t.Fatalf("accepted a crit header: %q", tok)
			}
		}
		check(token)
		if parts := strings.SplitN(token, ".", 3); len(parts) >= 2 {
			check(resign(parts[0] + "." + parts[1]))
		}
	})
}

// resign appends an HS256 signature under the test secret to signingInput.
func resign(signingInput string) string {
	m := hmac.New(sha256.New, testSecret)
	m.Write([]byte(signingInput))
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func decodeHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("accepted token has an undecodable header: %v", err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("accepted token has a non-JSON header: %v", err)
	}
	return h
}

// FuzzBearerToken checks that BearerToken never panics, returns exactly one of a token or an error, that a
// returned token is a non-empty b64token found verbatim in the header, and that errors are the package's
// sentinels and never quote the header.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"", " ", "Bearer", "Bearer ", "Bearer abc", "bearer a.b.c", "Basic dXNlcg==",
		"Bearer a b", "Bearer\tabc", "  BEARER   x==  ", "Bearer ==", "Bearer é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		tok, err := BearerToken(header)
		if err != nil {
			if tok != "" {
				t.Fatalf("token %q returned with error %v", tok, err)
			}
			if !errors.Is(err, ErrNoCredentials) && !errors.Is(err, ErrMalformedHeader) {
				t.Fatalf("unexpected error %v", err)
			}
			if h := strings.TrimSpace(header); len(h) >= 8 && strings.Contains(err.Error(), h) {
				t.Fatalf("error %q echoes the header", err)
			}
			return
		}
		if tok == "" || !isB64Token(tok) || !strings.Contains(header, tok) || strings.ContainsAny(tok, " \t\r\n") {
			t.Fatalf("BearerToken(%q) = %q", header, tok)
		}
	})
}
