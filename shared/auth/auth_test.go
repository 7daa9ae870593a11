package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Shared fixtures for the tests in this package.

var (
	testSecret = []byte("0123456789abcdef0123456789abcdef-test-only")
	testNow    = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
)

const (
	testIssuer   = "https://issuer.test"
	testAudience = "scrape-api"
)

func newTestVerifier(tb testing.TB, mutate func(*HS256Config)) *HS256Verifier {
	tb.Helper()
	cfg := HS256Config{
		Secret:   testSecret,
		Issuer:   testIssuer,
		Audience: testAudience,
		Now:      func() time.Time { return testNow },
	}
	if mutate != nil {
		mutate(&cfg)
	}
	v, err := NewHS256(cfg)
	if err != nil {
		tb.Fatalf("NewHS256: %v", err)
	}
	return v
}

// validClaims returns a payload the default test verifier accepts; tests delete or change fields.
func validClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"sub":   "user-1",
		"iss":   testIssuer,
		"aud":   testAudience,
		"iat":   testNow.Add(-time.Minute).Unix(),
		"nbf":   testNow.Add(-time.Minute).Unix(),
		"exp":   testNow.Add(time.Hour).Unix(),
		"scope": "scrape:run status:read",
	}
}

func with(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	c[k] = v
	return c
}

func without(c jwt.MapClaims, k string) jwt.MapClaims {
	delete(c, k)
	return c
}

// signHS signs claims with the test secret using method (HS256, HS384, HS512).
func signHS(tb testing.TB, method jwt.SigningMethod, claims jwt.MapClaims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(testSecret)
	if err != nil {
		tb.Fatalf("sign: %v", err)
	}
	return s
}

// signRS256 signs claims with a freshly generated RSA key.
func signRS256(tb testing.TB, claims jwt.MapClaims) string {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatalf("rsa key: %v", err)
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(key)
	if err != nil {
		tb.Fatalf("sign RS256: %v", err)
	}
	return s
}

// craft assembles a token by hand from a header and claims, with sig as the raw signature bytes.
func craft(tb testing.TB, header map[string]any, claims jwt.MapClaims, sig []byte) string {
	tb.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		tb.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(c) + "." + enc.EncodeToString(sig)
}

// signWithHeader signs header+claims with HS256 and the test secret, whatever the header says.
func signWithHeader(tb testing.TB, header map[string]any, claims jwt.MapClaims) string {
	tb.Helper()
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	t.Header = header
	s, err := t.SignedString(testSecret)
	if err != nil {
		tb.Fatalf("sign: %v", err)
	}
	return s
}
