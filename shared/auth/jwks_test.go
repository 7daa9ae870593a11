package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// idp is a fake identity provider: a JWKS endpoint whose key set the test changes, and the private keys.
type idp struct {
	srv     *httptest.Server
	fetches atomic.Int32
	mu      sync.Mutex
	set     []map[string]any
	down    bool
}

func newIDP(t *testing.T) *idp {
	p := &idp{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.fetches.Add(1)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": p.set})
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) publish(keys ...map[string]any) {
	p.mu.Lock()
	p.set = keys
	p.mu.Unlock()
}

func (p *idp) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PrivateKey, alg string) map[string]any {
	m := map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
	if alg != "" {
		m["alg"] = alg
	}
	return m
}

func ecJWK(kid string, k *ecdsa.PrivateKey) map[string]any {
	size := (k.Curve.Params().BitSize + 7) / 8
	x, y := make([]byte, size), make([]byte, size)
	pub, _ := k.PublicKey.Bytes() // uncompressed point: 0x04 | X | Y
	copy(x, pub[1:1+size])
	copy(y, pub[1+size:])
	return map[string]any{"kty": "EC", "kid": kid, "crv": k.Curve.Params().Name, "x": b64(x), "y": b64(y)}
}

func sign(t *testing.T, method jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var (
	keysOnce         sync.Once
	rsaKey1, rsaKey2 *rsa.PrivateKey
	ecKey256         *ecdsa.PrivateKey
)

func testKeys(t *testing.T) {
	keysOnce.Do(func() {
		var err error
		if rsaKey1, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if rsaKey2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if ecKey256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
}

func newJWKSVerifier(t *testing.T, p *idp, now *time.Time) *JWKSVerifier {
	t.Helper()
	v, err := NewJWKS(JWKSConfig{URL: p.srv.URL + "/.well-known/jwks.json", Issuer: testIssuer, Audience: testAudience,
		Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestJWKSVerifiesProviderTokens(t *testing.T) {
	testKeys(t)
	p := newIDP(t)
	p.publish(rsaJWK("r1", rsaKey1, "RS256"), ecJWK("e1", ecKey256), map[string]any{"kty": "oct", "kid": "s1", "k": b64([]byte("shared"))})
	now := testNow
	v := newJWKSVerifier(t, p, &now)
	ctx := context.Background()

	for name, tok := range map[string]string{
		"RS256": sign(t, jwt.SigningMethodRS256, "r1", rsaKey1, validClaims()),
		"ES256": sign(t, jwt.SigningMethodES256, "e1", ecKey256, validClaims()),
		// A Cognito access token has no aud; API Gateway's authorizer then matches client_id.
		"client_id, no aud": sign(t, jwt.SigningMethodRS256, "r1", rsaKey1, with(without(validClaims(), "aud"), "client_id", testAudience)),
	} {
		c, err := v.Verify(ctx, tok)
		if err != nil || c.Subject != "user-1" || !c.HasScope("scrape:run") {
			t.Errorf("%s: %+v %v", name, c, err)
		}
	}
	if n := p.fetches.Load(); n != 1 {
		t.Errorf("key set fetched %d times for two tokens, want once", n)
	}

	rejected := map[string]struct {
		token, reason string
	}{
		"another key, same kid":   {sign(t, jwt.SigningMethodRS256, "r1", rsaKey2, validClaims()), "bad signature"},
		"RS384 on an RS256 key":   {sign(t, jwt.SigningMethodRS384, "r1", rsaKey1, validClaims()), "unexpected signing algorithm"},
		"ES256 naming an RSA key": {sign(t, jwt.SigningMethodES256, "r1", ecKey256, validClaims()), "unexpected signing algorithm"},
		// Algorithm confusion: HS256 keyed with the public key, or with the set's symmetric key.
		"HS256 with the public key": {func() string {
			der, _ := x509.MarshalPKIXPublicKey(&rsaKey1.PublicKey)
			return sign(t, jwt.SigningMethodHS256, "r1", der, validClaims())
		}(), "unexpected signing algorithm"},
		"HS256 with the set's oct key": {sign(t, jwt.SigningMethodHS256, "s1", []byte("shared"), validClaims()), "unexpected signing algorithm"},
		"alg none":                     {craft(t, map[string]any{"alg": "none", "kid": "r1"}, validClaims(), nil), "unexpected signing algorithm"},
		"no kid, several keys":         {sign(t, jwt.SigningMethodRS256, "", rsaKey1, validClaims()), "missing kid header"},
		"unknown kid":                  {sign(t, jwt.SigningMethodRS256, "nope", rsaKey1, validClaims()), "unknown signing key"},
		"expired":                      {sign(t, jwt.SigningMethodRS256, "r1", rsaKey1, with(validClaims(), "exp", testNow.Add(-time.Hour).Unix())), "expired"},
		"wrong issuer":                 {sign(t, jwt.SigningMethodRS256, "r1", rsaKey1, with(validClaims(), "iss", "https://evil.test")), "wrong issuer"},
		"wrong audience":               {sign(t, jwt.SigningMethodRS256, "r1", rsaKey1, with(validClaims(), "aud", "other")), "wrong audience"},
		"aud wrong, client_id right":   {sign(t, jwt.SigningMethodRS256, "r1", rsaKey1, with(with(validClaims(), "aud", "other"), "client_id", testAudience)), "wrong audience"},
		"no aud, other client_id":      {sign(t, jwt.SigningMethodRS256, "r1", rsaKey1, with(without(validClaims(), "aud"), "client_id", "other")), "wrong audience"},
		"neither aud nor client_id":    {sign(t, jwt.SigningMethodRS256, "r1", rsaKey1, without(validClaims(), "aud")), "wrong audience"},
		"no issuer":                    {sign(t, jwt.SigningMethodRS256, "r1", rsaKey1, without(validClaims(), "iss")), "missing iss claim"},
		"no subject":                   {sign(t, jwt.SigningMethodRS256, "r1", rsaKey1, without(validClaims(), "sub")), "missing sub claim"},
	}
	for name, tc := range rejected {
		_, err := v.Verify(ctx, tc.token)
		if !errors.Is(err, ErrInvalidToken) || err.Error() != "invalid token: "+tc.reason {
			t.Errorf("%s: %v, want invalid token: %s", name, err, tc.reason)
		}
		if err != nil && strings.Contains(err.Error(), tc.token[:20]) {
			t.Errorf("%s: the error repeats the token", name)
		}
	}
	// The unknown kid asked for a fresh key set once; more of them within MinRefresh ask for nothing.
	before := p.fetches.Load()
	for range 50 {
		_, _ = v.Verify(ctx, sign(t, jwt.SigningMethodRS256, "made-up", rsaKey1, validClaims()))
	}
	if n := p.fetches.Load() - before; n != 0 {
		t.Errorf("50 tokens with made-up key ids fetched the key set %d times within MinRefresh", n)
	}
}

// Key rotation: a token signed with a key published after the set was fetched verifies (the unknown kid
// makes the verifier fetch again), and keys are fetched again after MaxAge.
func TestJWKSFollowsKeyRotation(t *testing.T) {
	testKeys(t)
	p := newIDP(t)
	p.publish(rsaJWK("r1", rsaKey1, ""))
	now := testNow
	v := newJWKSVerifier(t, p, &now)
	ctx := context.Background()
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, "", rsaKey1, validClaims())); err != nil {
		t.Fatalf("single key without kid: %v", err)
	}
	p.publish(rsaJWK("r1", rsaKey1, ""), rsaJWK("r2", rsaKey2, ""))
	now = now.Add(DefaultJWKSMinRefresh)
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, "r2", rsaKey2, validClaims())); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	p.publish(rsaJWK("r2", rsaKey2, ""))
	now = now.Add(DefaultJWKSMaxAge)
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, "r1", rsaKey1, validClaims())); err == nil || err.Error() != "invalid token: unknown signing key" {
		t.Fatalf("a key withdrawn from the set still verifies after MaxAge: %v", err)
	}
	if n := p.fetches.Load(); n != 3 {
		t.Fatalf("%d fetches, want 3 (first use, unknown kid, MaxAge)", n)
	}
}

// A provider that cannot be reached: 503-worthy ErrKeysUnavailable (not an invalid token) while no keys are
// held, retried at most once a second; once keys are held, an outage does not stop verification.
func TestJWKSProviderOutage(t *testing.T) {
	testKeys(t)
	p := newIDP(t)
	p.publish(rsaJWK("r1", rsaKey1, "RS256"))
	p.setDown(true)
	now := testNow
	v := newJWKSVerifier(t, p, &now)
	ctx := context.Background()
	tok := sign(t, jwt.SigningMethodRS256, "r1", rsaKey1, validClaims())
	for range 20 {
		_, err := v.Verify(ctx, tok)
		if !errors.Is(err, ErrKeysUnavailable) || errors.Is(err, ErrInvalidToken) {
			t.Fatalf("provider down, no keys: %v", err)
		}
	}
	if n := p.fetches.Load(); n != 1 {
		t.Fatalf("20 requests within a second fetched %d times, want 1", n)
	}
	p.setDown(false)
	now = now.Add(time.Second)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("provider back: %v", err)
	}
	p.setDown(true)
	now = now.Add(2 * DefaultJWKSMaxAge)
	tok = sign(t, jwt.SigningMethodRS256, "r1", rsaKey1, with(validClaims(), "exp", now.Add(time.Hour).Unix()))
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("provider down with keys held: %v", err)
	}
}

func TestNewJWKSRefusesUnsafeConfigurations(t *testing.T) {
	for _, cfg := range []JWKSConfig{
		{URL: "http://idp.example.com/jwks.json", Issuer: "i", Audience: "a"},
		{URL: "ftp://127.0.0.1/jwks.json", Issuer: "i", Audience: "a"},
		{URL: "jwks.json", Issuer: "i", Audience: "a"},
		{URL: "https://idp.example.com/jwks.json", Audience: "a"},
		{URL: "https://idp.example.com/jwks.json", Issuer: "i"},
		{URL: "https://idp.example.com/jwks.json", Issuer: "i", Audience: "a", Leeway: -time.Second},
	} {
		if _, err := NewJWKS(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	for _, u := range []string{"https://idp.example.com/jwks.json", "http://127.0.0.1:8081/jwks.json", "http://localhost/jwks.json", "http://[::1]:9/k"} {
		if _, err := NewJWKS(JWKSConfig{URL: u, Issuer: "i", Audience: "a"}); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestParseJWKSSkipsKeysItCannotUse(t *testing.T) {
	testKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	enc := rsaJWK("enc", rsaKey2, "")
	enc["use"] = "enc"
	offCurve := ecJWK("off", ecKey256)
	offCurve["y"] = b64(big.NewInt(5).Bytes())
	set := map[string]any{"keys": []any{
		rsaJWK("ok-rsa", rsaKey1, "RS256"), ecJWK("ok-p384", p384), rsaJWK("small", small, ""), enc, offCurve,
		ecJWK("p521", p521), rsaJWK("ps", rsaKey2, "PS256"), map[string]any{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
		map[string]any{"kty": "RSA", "kid": "even-e", "n": b64(rsaKey2.N.Bytes()), "e": b64([]byte{4})},
	}}
	body, _ := json.Marshal(set)
	keys, err := ParseJWKS(body)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys["ok-rsa"].public == nil || keys["ok-p384"].public == nil {
		t.Fatalf("usable keys %v, want ok-rsa and ok-p384 only", keys)
	}
	for _, bad := range []string{`{"keys":[]}`, `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`, `[]`, `{`,
		`{"keys":[` + string(mustJSON(rsaJWK("a", rsaKey1, ""))) + `,` + string(mustJSON(rsaJWK("a", rsaKey2, ""))) + `]}`} {
		if _, err := ParseJWKS([]byte(bad)); err == nil {
			t.Errorf("%.80s accepted", bad)
		}
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// FuzzParseJWKS: a key set comes from the network; parsing never panics and returns only keys that fit an
// accepted algorithm.
func FuzzParseJWKS(f *testing.F) {
	testKeys(nil)
	for _, s := range []string{
		string(mustJSON(map[string]any{"keys": []any{rsaJWK("r", rsaKey1, "RS256"), ecJWK("e", ecKey256)}})),
		`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`,
		`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`,
		`{"keys":[{"kty":"RSA","n":"` + strings.Repeat("_", 400) + `","e":"AQAB"}]}`,
		`{"keys":null}`, `{"keys":[null]}`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		keys, err := ParseJWKS(body)
		if err != nil {
			return
		}
		for kid, k := range keys {
			ok := false
			for _, alg := range jwksAlgs {
				ok = ok || k.fits(alg)
			}
			if !ok {
				t.Fatalf("key %q fits no accepted algorithm", kid)
			}
			if rk, isRSA := k.public.(*rsa.PublicKey); isRSA && rk.N.BitLen() < MinRSABits {
				t.Fatalf("key %q is a %d-bit RSA key", kid, rk.N.BitLen())
			}
		}
	})
}
