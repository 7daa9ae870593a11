package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// rawToken signs a token whose header and claims are the given JSON texts, byte for byte, with the test
// secret (HS256), so that duplicate members and odd spellings reach the verifier as written.
func rawToken(header, claims string) string {
	enc := base64.RawURLEncoding
	return resign(enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims)))
}

// Registered claims count only when spelled exactly and typed as RFC 7519 says; a member named twice, in the
// header or the claims, makes a token ambiguous; a token may live at most MaxTTL.
func TestVerifyStrictClaims(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, nil)
	const hdr = `{"alg":"HS256","typ":"JWT"}`
	iat, exp := testNow.Add(-time.Minute).Unix(), testNow.Add(time.Hour).Unix()
	base := fmt.Sprintf(`"iss":%q,"aud":%q,"iat":%d`, testIssuer, testAudience, iat)
	for _, tc := range []struct {
		name, header, claims string
		reason               string // "" means accepted
	}{
		{"valid", hdr, fmt.Sprintf(`{%s,"sub":"u","exp":%d}`, base, exp), ""},
		{"upper-case EXP only", hdr, fmt.Sprintf(`{%s,"sub":"u","EXP":%d}`, base, exp), `spelled like "exp"`},
		{"upper-case SUB beside exp", hdr, fmt.Sprintf(`{%s,"SUB":"admin","exp":%d}`, base, exp), `spelled like "sub"`},
		{"long s in sub", hdr, fmt.Sprintf(`{%s,"ſub":"admin","exp":%d}`, base, exp), `spelled like "sub"`},
		{"Kelvin sign in an unknown claim", hdr, fmt.Sprintf(`{%s,"sub":"u","exp":%d,"\u212aid":"x"}`, base, exp), ""}, // folds to no known claim
		{"exp as a string", hdr, fmt.Sprintf(`{%s,"sub":"u","exp":"%d"}`, base, exp), "exp claim must be a number"},
		{"nbf as a string", hdr, fmt.Sprintf(`{%s,"sub":"u","exp":%d,"nbf":"%d"}`, base, exp, iat), "nbf claim must be a number"},
		{"iat as a bool", hdr, fmt.Sprintf(`{"iss":%q,"aud":%q,"iat":true,"sub":"u","exp":%d}`, testIssuer, testAudience, exp), "malformed"}, // the library refuses it first
		{"sub as a number", hdr, fmt.Sprintf(`{%s,"sub":7,"exp":%d}`, base, exp), "malformed"},
		{"duplicate sub", hdr, fmt.Sprintf(`{%s,"sub":"u","sub":"admin","exp":%d}`, base, exp), "a claim appears twice"},
		{"duplicate exp", hdr, fmt.Sprintf(`{%s,"sub":"u","exp":%d,"exp":%d}`, base, exp, exp+999999), "a claim appears twice"},
		{"duplicate alg", `{"alg":"HS256","alg":"HS256"}`, fmt.Sprintf(`{%s,"sub":"u","exp":%d}`, base, exp), "a header appears twice"},
		{"lifetime beyond the maximum", hdr, fmt.Sprintf(`{%s,"sub":"u","exp":%d}`, base, testNow.Add(25*time.Hour).Unix()),
			"lifetime of 25h1m0s (exp - iat) is longer than the maximum of 24h0m0s"},
		{"no iat, far exp", hdr, fmt.Sprintf(`{"iss":%q,"aud":%q,"sub":"u","exp":%d}`, testIssuer, testAudience, testNow.Add(48*time.Hour).Unix()),
			"expires 48h0m0s from now, later than the maximum lifetime of 24h0m0s"},
		{"no iat, exp within the maximum", hdr, fmt.Sprintf(`{"iss":%q,"aud":%q,"sub":"u","exp":%d}`, testIssuer, testAudience, testNow.Add(23*time.Hour).Unix()), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := v.Verify(context.Background(), rawToken(tc.header, tc.claims))
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Verify = %+v, %v; want a rejection mentioning %q", c, err, tc.reason)
			}
			if strings.Contains(err.Error(), "admin") {
				t.Fatalf("the reason echoes a claim: %v", err)
			}
		})
	}
}

func TestMaxTTLSetting(t *testing.T) {
	t.Parallel()
	claims := with(validClaims(), "exp", testNow.Add(47*time.Hour).Unix())
	tok := signHS(t, jwt.SigningMethodHS256, claims)
	if _, err := newTestVerifier(t, nil).Verify(context.Background(), tok); err == nil {
		t.Fatal("a 47 h token passed the default maximum")
	}
	long := newTestVerifier(t, func(c *HS256Config) { c.MaxTTL = 48 * time.Hour })
	if _, err := long.Verify(context.Background(), tok); err != nil {
		t.Fatalf("MaxTTL 48h: %v", err)
	}
	if _, err := NewHS256(HS256Config{Secret: testSecret, MaxTTL: -time.Second}); err == nil {
		t.Fatal("a negative MaxTTL was accepted")
	}
	// IssueHS256 with the default maximum verifies (exp - iat is exactly the ttl).
	issued, err := IssueHS256(testSecret, Claims{Subject: "s"}, DefaultMaxTTL)
	if err != nil {
		t.Fatal(err)
	}
	real, err := NewHS256(HS256Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := real.Verify(context.Background(), issued); err != nil {
		t.Fatalf("a token of exactly DefaultMaxTTL: %v", err)
	}
}

// The JWKS verifier applies the same rules to an identity provider's tokens.
func TestJWKSStrictClaims(t *testing.T) {
	testKeys(t)
	p := newIDP(t)
	p.publish(rsaJWK("r1", rsaKey1, "RS256"))
	now := testNow
	v := newJWKSVerifier(t, p, &now)
	folded := without(validClaims(), "sub")
	folded["SUB"] = "admin"
	for name, tc := range map[string]struct {
		claims jwt.MapClaims
		reason string
	}{
		"case-folded SUB": {folded, `spelled like "sub"`},
		"exp as a string": {with(validClaims(), "exp", fmt.Sprint(testNow.Add(time.Hour).Unix())), "exp claim must be a number"},
		"two days":        {with(validClaims(), "exp", testNow.Add(48*time.Hour).Unix()), "longer than the maximum of 24h0m0s"},
	} {
		_, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodRS256, "r1", rsaKey1, tc.claims))
		if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%s: %v, want %q", name, err, tc.reason)
		}
	}
}
