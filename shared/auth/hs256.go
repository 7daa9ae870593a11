package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Verifier checks a bearer token and returns the caller's claims. Every rejection wraps ErrInvalidToken.
type Verifier interface {
	Verify(ctx context.Context, token string) (Claims, error)
}

var _ Verifier = (*HS256Verifier)(nil)

const (
	// MaxTokenBytes is the longest token Verify will look at. Real tokens are well under 2 KiB.
	MaxTokenBytes = 8 << 10
	// MinSecretBytes is the shortest HS256 secret accepted: 256 bits, the size of the HMAC-SHA256 output
	// (RFC 7518 §3.2 requires a key of at least that size).
	MinSecretBytes = 32
	// DefaultLeeway is the clock skew allowed on exp, nbf and iat when HS256Config.Leeway is zero.
	DefaultLeeway = 30 * time.Second
)

const algHS256 = "HS256"

// HS256Config configures an HS256Verifier.
type HS256Config struct {
	// Secret is the shared HMAC key, at least MinSecretBytes long. It is copied.
	Secret []byte
	// Issuer, when set, must equal the token's "iss"; a token without "iss" is then rejected.
	Issuer string
	// Audience, when set, must be one of the token's "aud" values; a token without "aud" is then rejected.
	Audience string
	// Leeway is the clock skew tolerated on exp, nbf and iat. Zero means DefaultLeeway; negative is an error.
	Leeway time.Duration
	// MaxTTL is the longest lifetime a token may have: exp-iat, or exp-now for a token without iat. Zero
	// means DefaultMaxTTL; negative is an error.
	MaxTTL time.Duration
	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time
}

// HS256Verifier verifies HMAC-SHA256 signed JWTs with a shared secret. It is safe for concurrent use.
type HS256Verifier struct {
	secret   []byte
	issuer   string
	audience string
	parser   *jwt.Parser
	rules    strictRules
}

// NewHS256 returns a verifier for cfg. It fails when the secret is shorter than MinSecretBytes or the leeway
// is negative.
func NewHS256(cfg HS256Config) (*HS256Verifier, error) {
	if err := checkSecret(cfg.Secret); err != nil {
		return nil, err
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("auth: leeway must not be negative, got %v", cfg.Leeway)
	}
	leeway := cfg.Leeway
	if leeway == 0 {
		leeway = DefaultLeeway
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	rules, err := newStrictRules(cfg.MaxTTL, leeway, now)
	if err != nil {
		return nil, err
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{algHS256}),
		jwt.WithStrictDecoding(),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	return &HS256Verifier{
		secret:   append([]byte(nil), cfg.Secret...),
		issuer:   cfg.Issuer,
		audience: cfg.Audience,
		parser:   jwt.NewParser(opts...),
		rules:    rules,
	}, nil
}

func checkSecret(secret []byte) error {
	if len(secret) < MinSecretBytes {
		return fmt.Errorf("auth: HS256 secret is %d bytes; at least %d bytes (256 bits) of random data are required "+
			"(generate one with: openssl rand -base64 48)", len(secret), MinSecretBytes)
	}
	return nil
}

// Verify checks token and returns its claims. ctx is unused: verification is local computation. Any error
// wraps ErrInvalidToken and carries a reason safe to show the client.
func (v *HS256Verifier) Verify(_ context.Context, token string) (Claims, error) {
	return verify(token, v.parser, v.key, v.classify, v.rules, nil)
}

// verify is Verify's common part: the size rules before any decoding, parsing with parser and keyFunc, the
// rules the parser does not know (crit, sub, and rules: exact and typed claims, the maximum lifetime), and
// classify for the parser's own rejections. inspect, when not nil, sees the claims of a token that passed
// all of that.
func verify(token string, parser *jwt.Parser, keyFunc jwt.Keyfunc, classify func(*jwt.Token, *wireClaims, error) error,
	rules strictRules, inspect func(*wireClaims)) (Claims, error) {
	if token == "" {
		return Claims{}, invalid(reasonEmpty, nil)
	}
	if len(token) > MaxTokenBytes {
		return Claims{}, invalid(reasonTooLarge, nil)
	}
	var wc wireClaims
	parsed, err := parser.ParseWithClaims(token, &wc, keyFunc)
	if err != nil {
		return Claims{}, classify(parsed, &wc, err)
	}
	if _, ok := parsed.Header["crit"]; ok {
		return Claims{}, invalid(reasonCrit, nil)
	}
	if err := rules.check(token, &wc); err != nil {
		return Claims{}, err
	}
	if wc.Subject == "" {
		return Claims{}, invalid("missing sub claim", nil)
	}
	if inspect != nil {
		inspect(&wc)
	}
	return wc.claims(), nil
}

// key hands the secret to the jwt library, refusing anything but HS256 a second time (WithValidMethods already
// did) so that the key can never be used with another algorithm even if the options change.
func (v *HS256Verifier) key(t *jwt.Token) (any, error) {
	if m, ok := t.Method.(*jwt.SigningMethodHMAC); !ok || m.Alg() != algHS256 {
		return nil, errUnexpectedAlg
	}
	return v.secret, nil
}

var errUnexpectedAlg = errors.New("unexpected signing algorithm")

// classify turns a jwt parse error into a client-safe reason (see classify).
func (v *HS256Verifier) classify(t *jwt.Token, wc *wireClaims, err error) error {
	return classify(t, wc, err, func(alg string) bool { return alg == algHS256 }, v.issuer, v.audience)
}

// classify turns a jwt parse error into a client-safe reason. Malformed input is reported first, then the
// algorithm (algOK says which the verifier accepts), the signature, and the claims; when several claims fail,
// the first of missing, expired, not-yet-valid, issued-later, issuer, audience is named.
func classify(t *jwt.Token, wc *wireClaims, err error, algOK func(string) bool, issuer, audience string) error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return invalid(reasonMalformed, err)
	case t == nil:
		return invalid(reasonMalformed, err)
	}
	if alg, _ := t.Header["alg"].(string); !algOK(alg) || errors.Is(err, errUnexpectedAlg) {
		return invalid(reasonAlgorithm, err)
	}
	switch {
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return invalid(reasonSignature, err)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return invalid("missing "+missingClaim(wc, issuer, audience)+" claim", err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return invalid(reasonExpired, err)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return invalid(reasonNotYetValid, err)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return invalid(reasonIssuedLater, err)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return invalid(reasonIssuer, err)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return invalid(reasonAudience, err)
	default:
		return invalid(reasonMalformed, err)
	}
}

// missingClaim names the required claims absent from wc; the parser only reports that one is missing.
func missingClaim(wc *wireClaims, issuer, audience string) string {
	var missing []string
	if wc.ExpiresAt == nil {
		missing = append(missing, "exp")
	}
	if issuer != "" && wc.Issuer == "" {
		missing = append(missing, "iss")
	}
	if audience != "" && (len(wc.Audience) == 0 || len(wc.Audience) == 1 && wc.Audience[0] == "") {
		missing = append(missing, "aud")
	}
	if len(missing) == 0 {
		return "required"
	}
	return strings.Join(missing, "/")
}

// IssueHS256 signs a token for c with secret, valid from now for ttl. It sets sub, iss, aud (when not empty),
// iat, nbf, exp and, when c.Scopes is not empty, "scope" as a space-separated string; c.ExpiresAt is ignored.
// It is meant for dev tokens and tests: the secret rules are the verifier's, and sub and a positive ttl are
// required so that the token it returns can verify.
func IssueHS256(secret []byte, c Claims, ttl time.Duration) (string, error) {
	if err := checkSecret(secret); err != nil {
		return "", err
	}
	if c.Subject == "" {
		return "", errors.New("auth: subject is required")
	}
	if ttl <= 0 {
		return "", fmt.Errorf("auth: ttl must be positive, got %v", ttl)
	}
	for _, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n") {
			return "", fmt.Errorf("auth: scope %q is empty or contains whitespace", s)
		}
	}
	now := time.Now()
	claims := struct {
		jwt.RegisteredClaims
		Scope string `json:"scope,omitempty"`
	}{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.Subject,
			Issuer:    c.Issuer,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		},
		Scope: strings.Join(c.Scopes, " "),
	}
	if len(c.Audience) > 0 {
		claims.Audience = jwt.ClaimStrings(append([]string(nil), c.Audience...))
	}
	signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		return "", fmt.Errorf("auth: sign token: %w", err)
	}
	return signed, nil
}
