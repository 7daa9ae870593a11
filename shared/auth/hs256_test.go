package auth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, nil)
	valid := signHS(t, jwt.SigningMethodHS256, validClaims())
	tampered := []byte(valid)
	// Flip a character in the middle of the signature (the last one may only carry padding bits).
	i := strings.LastIndexByte(valid, '.') + 10
	if tampered[i] == 'A' {
		tampered[i] = 'B'
	} else {
		tampered[i] = 'A'
	}
	payloadSwap := func() string { // valid signature from one token, payload of another
		other := signHS(t, jwt.SigningMethodHS256, with(validClaims(), "sub", "admin"))
		p := strings.Split(valid, ".")
		q := strings.Split(other, ".")
		return p[0] + "." + q[1] + "." + p[2]
	}()

	tests := []struct {
		name   string
		token  string
		reason string // "" means the token must verify
		check  func(t *testing.T, c Claims)
		is     error // optional extra errors.Is target
	}{
		{
			name:  "valid",
			token: valid,
			check: func(t *testing.T, c Claims) {
				if c.Subject != "user-1" || c.Issuer != testIssuer || !slices.Equal(c.Audience, []string{testAudience}) {
					t.Errorf("claims = %+v", c)
				}
				if !c.ExpiresAt.Equal(testNow.Add(time.Hour)) {
					t.Errorf("ExpiresAt = %v, want %v", c.ExpiresAt, testNow.Add(time.Hour))
				}
				if !slices.Equal(c.Scopes, []string{"scrape:run", "status:read"}) || !c.HasScope("scrape:run") || c.HasScope("admin") {
					t.Errorf("Scopes = %q", c.Scopes)
				}
			},
		},
		{
			name:  "aud array containing ours",
			token: signHS(t, jwt.SigningMethodHS256, with(validClaims(), "aud", []string{"other", testAudience})),
		},
		{
			name:  "scp array when scope absent",
			token: signHS(t, jwt.SigningMethodHS256, with(without(validClaims(), "scope"), "scp", []string{"a", "b"})),
			check: func(t *testing.T, c Claims) {
				if !slices.Equal(c.Scopes, []string{"a", "b"}) {
					t.Errorf("Scopes = %q", c.Scopes)
				}
			},
		},
		{
			name:  "scp string when scope absent",
			token: signHS(t, jwt.SigningMethodHS256, with(without(validClaims(), "scope"), "scp", "x y")),
			check: func(t *testing.T, c Claims) {
				if !slices.Equal(c.Scopes, []string{"x", "y"}) {
					t.Errorf("Scopes = %q", c.Scopes)
				}
			},
		},
		{
			name:  "scope wins over scp",
			token: signHS(t, jwt.SigningMethodHS256, with(validClaims(), "scp", []string{"ignored"})),
			check: func(t *testing.T, c Claims) {
				if c.HasScope("ignored") {
					t.Errorf("Scopes = %q", c.Scopes)
				}
			},
		},
		{
			name:  "no scopes",
			token: signHS(t, jwt.SigningMethodHS256, without(validClaims(), "scope")),
			check: func(t *testing.T, c Claims) {
				if len(c.Scopes) != 0 {
					t.Errorf("Scopes = %q", c.Scopes)
				}
			},
		},
		{
			name:  "expired within leeway",
			token: signHS(t, jwt.SigningMethodHS256, with(validClaims(), "exp", testNow.Add(-20*time.Second).Unix())),
		},
		{
			name:  "nbf within leeway",
			token: signHS(t, jwt.SigningMethodHS256, with(validClaims(), "nbf", testNow.Add(20*time.Second).Unix())),
		},
		{
			name:   "expired",
			token:  signHS(t, jwt.SigningMethodHS256, with(validClaims(), "exp", testNow.Add(-time.Minute).Unix())),
			reason: "expired",
			is:     jwt.ErrTokenExpired,
		},
		{
			name:   "not yet valid",
			token:  signHS(t, jwt.SigningMethodHS256, with(validClaims(), "nbf", testNow.Add(time.Minute).Unix())),
			reason: "not valid yet",
		},
		{
			name:   "issued in the future",
			token:  signHS(t, jwt.SigningMethodHS256, with(validClaims(), "iat", testNow.Add(time.Minute).Unix())),
			reason: "issued in the future",
		},
		{
			name:   "wrong issuer",
			token:  signHS(t, jwt.SigningMethodHS256, with(validClaims(), "iss", "https://evil.test")),
			reason: "wrong issuer",
		},
		{
			name:   "missing issuer",
			token:  signHS(t, jwt.SigningMethodHS256, without(validClaims(), "iss")),
			reason: "missing iss claim",
		},
		{
			name:   "wrong audience",
			token:  signHS(t, jwt.SigningMethodHS256, with(validClaims(), "aud", []string{"a", "b"})),
			reason: "wrong audience",
		},
		{
			name:   "missing audience",
			token:  signHS(t, jwt.SigningMethodHS256, without(validClaims(), "aud")),
			reason: "missing aud claim",
		},
		{
			name:   "missing sub",
			token:  signHS(t, jwt.SigningMethodHS256, without(validClaims(), "sub")),
			reason: "missing sub claim",
		},
		{
			name:   "empty sub",
			token:  signHS(t, jwt.SigningMethodHS256, with(validClaims(), "sub", "")),
			reason: "missing sub claim",
		},
		{
			name:   "missing exp",
			token:  signHS(t, jwt.SigningMethodHS256, without(validClaims(), "exp")),
			reason: "missing exp claim",
		},
		{
			name:   "exp as string",
			token:  signHS(t, jwt.SigningMethodHS256, with(validClaims(), "exp", "2099-01-01")),
			reason: "malformed",
		},
		{
			name:   "scope of wrong type",
			token:  signHS(t, jwt.SigningMethodHS256, with(validClaims(), "scope", 42)),
			reason: "malformed",
		},
		{
			name:   "alg none",
			token:  craft(t, map[string]any{"alg": "none", "typ": "JWT"}, validClaims(), nil),
			reason: "unexpected signing algorithm",
		},
		{
			name:   "alg None with an HMAC signature",
			token:  craft(t, map[string]any{"alg": "None"}, validClaims(), []byte("x")),
			reason: "unexpected signing algorithm",
		},
		{
			name:   "alg missing",
			token:  craft(t, map[string]any{"typ": "JWT"}, validClaims(), []byte("x")),
			reason: "unexpected signing algorithm",
		},
		{
			name:   "alg lower case hs256",
			token:  signWithHeader(t, map[string]any{"alg": "hs256"}, validClaims()),
			reason: "unexpected signing algorithm",
		},
		{
			name:   "HS384",
			token:  signHS(t, jwt.SigningMethodHS384, validClaims()),
			reason: "unexpected signing algorithm",
		},
		{
			name:   "HS512",
			token:  signHS(t, jwt.SigningMethodHS512, validClaims()),
			reason: "unexpected signing algorithm",
		},
		{
			name:   "RS256",
			token:  signRS256(t, validClaims()),
			reason: "unexpected signing algorithm",
		},
		{
			name:   "crit header",
			token:  signWithHeader(t, map[string]any{"alg": "HS256", "crit": []string{"exp"}, "exp": 1}, validClaims()),
			reason: "unsupported critical header",
		},
		{
			name:   "tampered signature",
			token:  string(tampered),
			reason: "bad signature",
			is:     jwt.ErrTokenSignatureInvalid,
		},
		{
			name:   "payload swapped",
			token:  payloadSwap,
			reason: "bad signature",
		},
		{
			name:   "signed with another secret",
			token:  mustIssue(t, []byte("another-secret-another-secret-another"), validClaims()),
			reason: "bad signature",
		},
		{
			name:   "signature stripped",
			token:  valid[:strings.LastIndexByte(valid, '.')+1],
			reason: "bad signature",
		},
		{name: "garbage", token: "not a token", reason: "malformed"},
		{name: "two segments", token: "abc.def", reason: "malformed"},
		{name: "four segments", token: valid + ".x", reason: "malformed"},
		{name: "padded base64", token: strings.Replace(valid, ".", "==.", 1), reason: "malformed"},
		{name: "header not JSON", token: "bm90IGpzb24.e30.c2ln", reason: "malformed"},
		{name: "empty", token: "", reason: "empty"},
		{name: "too large", token: valid + strings.Repeat("A", MaxTokenBytes), reason: "too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := v.Verify(context.Background(), tt.token)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if tt.check != nil {
					tt.check(t, c)
				}
				return
			}
			if err == nil {
				t.Fatalf("Verify accepted the token: %+v", c)
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Errorf("error %v does not wrap ErrInvalidToken", err)
			}
			if want := "invalid token: " + tt.reason; err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
			if !isZero(c) {
				t.Errorf("claims returned with an error: %+v", c)
			}
		})
	}
}

func mustIssue(tb testing.TB, secret []byte, claims jwt.MapClaims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func isZero(c Claims) bool {
	return c.Subject == "" && c.Issuer == "" && c.Audience == nil && c.ExpiresAt.IsZero() && c.Scopes == nil
}

func TestVerifyWithoutIssuerOrAudience(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, func(c *HS256Config) { c.Issuer, c.Audience = "", "" })
	tok := signHS(t, jwt.SigningMethodHS256, without(without(validClaims(), "iss"), "aud"))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// exp stays required and is the only claim reported missing.
	tok = signHS(t, jwt.SigningMethodHS256, without(without(without(validClaims(), "iss"), "aud"), "exp"))
	if _, err := v.Verify(context.Background(), tok); err == nil || err.Error() != "invalid token: missing exp claim" {
		t.Fatalf("Verify = %v, want missing exp claim", err)
	}
}

func TestVerifyLeeway(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, func(c *HS256Config) { c.Leeway = 2 * time.Minute })
	tok := signHS(t, jwt.SigningMethodHS256, with(validClaims(), "exp", testNow.Add(-time.Minute).Unix()))
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("one minute past exp with two minutes of leeway: %v", err)
	}
	tok = signHS(t, jwt.SigningMethodHS256, with(validClaims(), "exp", testNow.Add(-3*time.Minute).Unix()))
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, jwt.ErrTokenExpired) {
		t.Fatalf("three minutes past exp: %v", err)
	}
}

func TestVerifyErrorNeverEchoesToken(t *testing.T) {
	t.Parallel()
	v := newTestVerifier(t, nil)
	secretish := "sk_live_DO_NOT_LOG_ME"
	for _, tok := range []string{
		secretish,
		craft(t, map[string]any{"alg": "HS256"}, jwt.MapClaims{"exp": secretish}, []byte("x")),
		craft(t, map[string]any{"alg": secretish}, validClaims(), []byte("x")),
		signHS(t, jwt.SigningMethodHS256, with(validClaims(), "iss", secretish)),
		signHS(t, jwt.SigningMethodHS256, with(validClaims(), "aud", secretish)),
	} {
		_, err := v.Verify(context.Background(), tok)
		if err == nil {
			t.Fatalf("accepted %q", tok)
		}
		if strings.Contains(err.Error(), secretish) || strings.Contains(err.Error(), tok) {
			t.Errorf("error %q echoes the token", err)
		}
	}
}

func TestNewHS256(t *testing.T) {
	t.Parallel()
	_, err := NewHS256(HS256Config{Secret: []byte("short")})
	if err == nil || !strings.Contains(err.Error(), "5 bytes") || !strings.Contains(err.Error(), "at least 32 bytes") {
		t.Errorf("short secret: err = %v", err)
	}
	if _, err := NewHS256(HS256Config{Secret: testSecret, Leeway: -time.Second}); err == nil {
		t.Error("negative leeway accepted")
	}
	// The secret is copied: changing the caller's slice afterwards does not change the verifier.
	secret := append([]byte(nil), testSecret...)
	v, err := NewHS256(HS256Config{Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := IssueHS256(testSecret, Claims{Subject: "s"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	secret[0] ^= 0xff
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Errorf("Verify after the caller changed its secret slice: %v", err)
	}
}

func TestIssueHS256RoundTrip(t *testing.T) {
	t.Parallel()
	v, err := NewHS256(HS256Config{Secret: testSecret, Issuer: testIssuer, Audience: testAudience})
	if err != nil {
		t.Fatal(err)
	}
	in := Claims{
		Subject:   "dev",
		Issuer:    testIssuer,
		Audience:  []string{testAudience, "other"},
		Scopes:    []string{"scrape:run"},
		ExpiresAt: time.Unix(1, 0), // ignored: ttl decides
	}
	before := time.Now().Truncate(time.Second)
	tok, err := IssueHS256(testSecret, in, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got.Subject != in.Subject || got.Issuer != in.Issuer || !slices.Equal(got.Audience, in.Audience) ||
		!slices.Equal(got.Scopes, in.Scopes) {
		t.Errorf("claims = %+v, want %+v", got, in)
	}
	if got.ExpiresAt.Before(before.Add(time.Hour)) || got.ExpiresAt.After(time.Now().Add(time.Hour)) {
		t.Errorf("ExpiresAt = %v, want about an hour from now", got.ExpiresAt)
	}
	// iat and nbf are set too.
	var mc jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &mc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"sub", "iss", "aud", "iat", "nbf", "exp"} {
		if _, ok := mc[k]; !ok {
			t.Errorf("issued token lacks %q", k)
		}
	}
}

func TestIssueHS256Rejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		secret []byte
		claims Claims
		ttl    time.Duration
	}{
		{"short secret", []byte("short"), Claims{Subject: "s"}, time.Hour},
		{"no subject", testSecret, Claims{}, time.Hour},
		{"zero ttl", testSecret, Claims{Subject: "s"}, 0},
		{"negative ttl", testSecret, Claims{Subject: "s"}, -time.Hour},
		{"scope with space", testSecret, Claims{Subject: "s", Scopes: []string{"a b"}}, time.Hour},
		{"empty scope", testSecret, Claims{Subject: "s", Scopes: []string{""}}, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tok, err := IssueHS256(tt.secret, tt.claims, tt.ttl); err == nil {
				t.Errorf("IssueHS256 = %q, want an error", tok)
			}
		})
	}
}
