package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrKeysUnavailable means the identity provider's signing keys could not be fetched and none are cached: the
// token may well be valid, the gateway just cannot tell now. It does not wrap ErrInvalidToken; the gateway
// answers 503 with Retry-After, not 401.
var ErrKeysUnavailable = errors.New("the identity provider's signing keys are unavailable")

// Defaults of JWKSConfig.
const (
	// DefaultJWKSMaxAge is how long fetched keys are used before they are fetched again.
	DefaultJWKSMaxAge = time.Hour
	// DefaultJWKSMinRefresh is the least time between two fetches that a token with an unknown key id
	// triggers, so a flood of tokens with made-up key ids cannot become a flood of requests to the provider.
	DefaultJWKSMinRefresh = 30 * time.Second
	// MinRSABits is the smallest RSA key accepted from a key set.
	MinRSABits = 2048
	// maxJWKSBytes caps what is read of a key set.
	maxJWKSBytes = 1 << 20
)

// jwksAlgs are the algorithms a JWKSVerifier accepts: RSA PKCS#1 v1.5 and ECDSA, as identity providers
// (Cognito, Auth0, Okta, Entra ID, Keycloak) sign. No HMAC: a key set is public, so a symmetric key from it
// would let anyone sign, and an "oct" key in a key set is ignored.
var jwksAlgs = []string{"RS256", "RS384", "RS512", "ES256", "ES384"}

// JWKSConfig configures a JWKSVerifier.
type JWKSConfig struct {
	// URL is the identity provider's JSON Web Key Set, e.g.
	// https://cognito-idp.eu-west-1.amazonaws.com/<pool id>/.well-known/jwks.json. It must be https, except
	// on a loopback host (a provider run on this machine for development and tests).
	URL string
	// Issuer must equal the token's "iss" (required: a key set alone does not say whose tokens to accept).
	Issuer string
	// Audience must be one of the token's "aud" values, or, in a token without "aud", its "client_id"
	// (Cognito access tokens): the rule of API Gateway's JWT authorizer. Required, as the authorizer asks.
	Audience string
	// Leeway is the clock skew tolerated on exp, nbf and iat. Zero means DefaultLeeway; negative is an error.
	Leeway time.Duration
	// MaxTTL is the longest lifetime a token may have (see HS256Config.MaxTTL). Zero means DefaultMaxTTL.
	MaxTTL time.Duration
	// MaxAge and MinRefresh: see DefaultJWKSMaxAge and DefaultJWKSMinRefresh (zero means those).
	MaxAge, MinRefresh time.Duration
	// Client fetches the key set; nil means a client with a 10 s timeout.
	Client *http.Client
	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time
}

// JWKSVerifier verifies tokens signed by an identity provider with the keys it publishes as a JSON Web Key
// Set (RFC 7517). The rules are HS256Verifier's (size, strict decoding, exp/nbf/iat with leeway, iss, aud,
// sub, no crit), plus: the header's alg is one of RS256/384/512 or ES256/384 and fits the key (an RSA key
// signs RS*, a P-256 key ES256, a P-384 key ES384, and a key that names its alg only that one); the header's
// kid names a key of the set (it may be left out when the set has exactly one key).
//
// Keys are fetched on first use, used for MaxAge, and fetched again early when a token names a key id the
// set does not have (key rotation), at most once per MinRefresh. When a refresh fails the keys already held
// are used on. It is safe for concurrent use.
type JWKSVerifier struct {
	cfg    JWKSConfig
	parser *jwt.Parser
	rules  strictRules

	fetchMu sync.Mutex // one fetch at a time

	mu        sync.Mutex
	keys      map[string]jwk // by kid
	fetchedAt time.Time      // of the keys held
	triedAt   time.Time      // of the last fetch attempt
	lastErr   error
}

var _ Verifier = (*JWKSVerifier)(nil)

// NewJWKS returns a verifier for cfg. It does not fetch the key set yet.
func NewJWKS(cfg JWKSConfig) (*JWKSVerifier, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("auth: JWKS URL %q is not an absolute http(s) URL", cfg.URL)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("auth: JWKS URL %q must be https (plain http is accepted only on a loopback host)", cfg.URL)
	}
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("auth: verifying with a JWKS needs both the issuer and the audience to accept")
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("auth: leeway must not be negative, got %v", cfg.Leeway)
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultJWKSMaxAge
	}
	if cfg.MinRefresh <= 0 {
		cfg.MinRefresh = DefaultJWKSMinRefresh
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	rules, err := newStrictRules(cfg.MaxTTL, cfg.Leeway, cfg.Now)
	if err != nil {
		return nil, err
	}
	return &JWKSVerifier{cfg: cfg, rules: rules, parser: jwt.NewParser(
		jwt.WithValidMethods(jwksAlgs),
		jwt.WithStrictDecoding(),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(cfg.Now),
		jwt.WithIssuer(cfg.Issuer),
		// The audience is checked in Verify: the library knows no client_id.
	)}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

var (
	errUnknownKey = errors.New("unknown signing key")
	errMissingKid = errors.New("missing kid header")
)

// Verify checks token against the provider's keys, fetching them when needed (with ctx). A rejection wraps
// ErrInvalidToken and carries a reason safe to show the client; ErrKeysUnavailable means the keys could not
// be had.
func (v *JWKSVerifier) Verify(ctx context.Context, token string) (Claims, error) {
	keyFunc := func(t *jwt.Token) (any, error) { return v.key(ctx, t) }
	var audOK bool
	claims, err := verify(token, v.parser, keyFunc, func(t *jwt.Token, wc *wireClaims, err error) error {
		switch {
		case errors.Is(err, ErrKeysUnavailable):
			return err
		case errors.Is(err, errMissingKid):
			return invalid("missing kid header", err)
		case errors.Is(err, errUnknownKey):
			return invalid("unknown signing key", err)
		}
		return classify(t, wc, err, func(alg string) bool { return slices.Contains(jwksAlgs, alg) }, v.cfg.Issuer, "")
	}, v.rules, func(wc *wireClaims) { audOK = audienceOK(wc, v.cfg.Audience) })
	if err != nil {
		return Claims{}, err
	}
	if !audOK {
		return Claims{}, invalid(reasonAudience, nil)
	}
	return claims, nil
}

// audienceOK applies API Gateway's JWT authorizer rule: one of "aud" is the audience, or, when the token has
// no "aud", its "client_id" is.
func audienceOK(wc *wireClaims, audience string) bool {
	aud := slices.DeleteFunc(slices.Clone([]string(wc.Audience)), func(s string) bool { return s == "" })
	if len(aud) > 0 {
		return slices.Contains(aud, audience)
	}
	return wc.ClientID != "" && wc.ClientID == audience
}

// key finds the public key for t, refusing one that does not fit t's algorithm.
func (v *JWKSVerifier) key(ctx context.Context, t *jwt.Token) (any, error) {
	alg, _ := t.Header["alg"].(string)
	kid, hasKid := t.Header["kid"].(string)
	if _, present := t.Header["kid"]; present && !hasKid {
		return nil, errMissingKid // a kid that is not a string names nothing
	}
	k, err := v.lookup(ctx, kid)
	if err != nil {
		return nil, err
	}
	if !k.fits(alg) {
		return nil, errUnexpectedAlg
	}
	return k.public, nil
}

// lookup returns the key kid ("" when the token names none: the set's only key), fetching the set when it is
// missing or old, or when kid is unknown and the last fetch is at least MinRefresh ago.
func (v *JWKSVerifier) lookup(ctx context.Context, kid string) (jwk, error) {
	now := v.cfg.Now()
	v.mu.Lock()
	k, found, err := v.find(kid)
	stale := v.keys == nil || now.Sub(v.fetchedAt) >= v.cfg.MaxAge
	gap := v.cfg.MinRefresh
	if v.keys == nil {
		gap = min(gap, time.Second) // nothing to verify with yet: try again soon, but not on every request
	}
	mayRefresh := v.triedAt.IsZero() || now.Sub(v.triedAt) >= gap
	v.mu.Unlock()
	if (stale || !found) && mayRefresh {
		v.refresh(ctx, now)
		v.mu.Lock()
		k, found, err = v.find(kid)
		v.mu.Unlock()
	}
	switch {
	case found:
		return k, nil
	case err != nil:
		return jwk{}, err
	default:
		return jwk{}, errUnknownKey
	}
}

// find looks kid up in the keys held (v.mu held). err is ErrKeysUnavailable (with the fetch's error) when no
// keys are held, errMissingKid when kid is "" and the set has more than one key.
func (v *JWKSVerifier) find(kid string) (jwk, bool, error) {
	if v.keys == nil {
		return jwk{}, false, fmt.Errorf("%w: %v", ErrKeysUnavailable, v.lastErr)
	}
	if kid == "" {
		if len(v.keys) != 1 {
			return jwk{}, false, errMissingKid
		}
		for _, k := range v.keys {
			return k, true, nil
		}
	}
	k, ok := v.keys[kid]
	return k, ok, nil
}

// refresh fetches the key set unless another caller did since asked; keys already held stay on failure.
func (v *JWKSVerifier) refresh(ctx context.Context, asked time.Time) {
	v.fetchMu.Lock()
	defer v.fetchMu.Unlock()
	v.mu.Lock()
	done := !v.triedAt.Before(asked)
	v.mu.Unlock()
	if done {
		return
	}
	// Not cancelled with the request that asked: its caller hanging up must not count as a failed fetch
	// for everyone else (the client's timeout still bounds it).
	keys, err := v.fetch(context.WithoutCancel(ctx))
	v.mu.Lock()
	defer v.mu.Unlock()
	v.triedAt = v.cfg.Now()
	v.lastErr = err
	if err == nil {
		v.keys, v.fetchedAt = keys, v.triedAt
	}
}

func (v *JWKSVerifier) fetch(ctx context.Context) (map[string]jwk, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, v.cfg.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.cfg.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch key set: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch key set: %s answered %s", v.cfg.URL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch key set: %w", err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("fetch key set: larger than %d bytes", maxJWKSBytes)
	}
	return ParseJWKS(body)
}

// jwk is a usable public key of a key set.
type jwk struct {
	public any    // *rsa.PublicKey or *ecdsa.PublicKey
	alg    string // the alg the set names for it, "" when none
}

// fits reports whether the key may verify a signature made with alg.
func (k jwk) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch pub := k.public.(type) {
	case *rsa.PublicKey:
		return alg == "RS256" || alg == "RS384" || alg == "RS512"
	case *ecdsa.PublicKey:
		return pub.Curve == elliptic.P256() && alg == "ES256" || pub.Curve == elliptic.P384() && alg == "ES384"
	}
	return false
}

// ParseJWKS reads a JSON Web Key Set and returns its usable signature keys by key id: RSA keys of at least
// MinRSABits and EC keys on P-256 or P-384 whose "use" (when present) is "sig" and whose "alg" (when present)
// is one this package accepts. Other keys (symmetric ones, encryption keys, other curves) are skipped, since
// a provider's set may hold them for other purposes; a set with no usable key is an error, as is one where
// two usable keys share a kid.
func ParseJWKS(body []byte) (map[string]jwk, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			Alg string `json:"alg"`
			N   string `json:"n"`
			E   string `json:"e"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("key set: %w", err)
	}
	keys := map[string]jwk{}
	for _, raw := range set.Keys {
		if raw.Use != "" && raw.Use != "sig" || raw.Alg != "" && !slices.Contains(jwksAlgs, raw.Alg) {
			continue
		}
		var pub any
		switch raw.Kty {
		case "RSA":
			n, errN := b64Int(raw.N)
			e, errE := b64Int(raw.E)
			if errN != nil || errE != nil || n.BitLen() < MinRSABits || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
				continue
			}
			pub = &rsa.PublicKey{N: n, E: int(e.Int64())}
		case "EC":
			var curve elliptic.Curve
			switch raw.Crv {
			case "P-256":
				curve = elliptic.P256()
			case "P-384":
				curve = elliptic.P384()
			default:
				continue
			}
			x, errX := b64Int(raw.X)
			y, errY := b64Int(raw.Y)
			if errX != nil || errY != nil {
				continue
			}
			key, ok := ecKey(curve, x, y)
			if !ok {
				continue
			}
			pub = key
		default:
			continue
		}
		if _, dup := keys[raw.Kid]; dup {
			return nil, fmt.Errorf("key set: two keys with kid %q", raw.Kid)
		}
		keys[raw.Kid] = jwk{public: pub, alg: raw.Alg}
	}
	if len(keys) == 0 {
		return nil, errors.New("key set: no usable signature key (RSA of 2048 bits or more, EC P-256 or P-384)")
	}
	return keys, nil
}

// ecKey returns the public key (x, y) on curve when the point lies on it.
func ecKey(curve elliptic.Curve, x, y *big.Int) (*ecdsa.PublicKey, bool) {
	size := (curve.Params().BitSize + 7) / 8
	if x.BitLen() > size*8 || y.BitLen() > size*8 {
		return nil, false
	}
	point := make([]byte, 1+2*size)
	point[0] = 4 // uncompressed
	x.FillBytes(point[1 : 1+size])
	y.FillBytes(point[1+size:])
	key, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, false
	}
	return key, true
}

// b64Int decodes an unsigned big-endian integer written in base64url without padding (RFC 7518 §2).
func b64Int(s string) (*big.Int, error) {
	if s == "" {
		return nil, errors.New("empty")
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, err
	}
	return new(big.Int).SetBytes(b), nil
}
