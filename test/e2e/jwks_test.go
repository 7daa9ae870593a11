package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The gateway checks an identity provider's RS256 tokens with the provider's published keys (JWT_JWKS_URL),
// as API Gateway's JWT authorizer does in AWS: a provider token scrapes; an HS256 token, a token of another
// issuer or with an unknown key is 401; while the provider's keys cannot be fetched the answer is 503
// auth_unavailable with Retry-After, and service resumes when they can.
func TestIdentityProviderTokens(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	var up atomic.Bool
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() || r.URL.Path != "/.well-known/jwks.json" {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		enc := base64.RawURLEncoding
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]any{
			"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
			"n": enc.EncodeToString(key.N.Bytes()), "e": enc.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	const issuer, audience = "https://idp.e2e.test/", "scraping-api-e2e"
	e := start(t, 1, "JWT_SECRET=", "JWT_JWKS_URL=http://"+ln.Addr().String()+"/.well-known/jwks.json",
		"JWT_ISSUER="+issuer, "JWT_AUDIENCE="+audience)
	token := func(kid, iss string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
			"sub": "user-42", "iss": iss, "aud": audience, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
		})
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	body := `{"script_name":"echo","parameters":{"via":"jwks"}}`

	// The provider is down and the gateway holds no keys yet.
	r := e.do(t, "POST", "/scrape", body, token("k1", issuer))
	if r.Code != http.StatusServiceUnavailable || r.Body["error_code"] != "auth_unavailable" {
		t.Fatalf("provider down: %d %s", r.Code, r.Raw)
	}

	up.Store(true)
	time.Sleep(1100 * time.Millisecond) // the verifier retries a failed fetch after a second
	r = e.do(t, "POST", "/scrape", body, token("k1", issuer))
	if r.Code != http.StatusOK || r.Body["status"] != "completed" {
		t.Fatalf("provider token: %d %s", r.Code, r.Raw)
	}
	for name, tok := range map[string]string{
		"HS256 token":     e.token,
		"other issuer":    token("k1", "https://other.test/"),
		"unknown key":     token("k2", issuer),
		"no token at all": "",
	} {
		if r := e.do(t, "POST", "/scrape", body, tok); r.Code != http.StatusUnauthorized || r.Body["error_code"] != "unauthorized" {
			t.Errorf("%s: %d %s", name, r.Code, r.Raw)
		}
	}
}
