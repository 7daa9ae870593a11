// Package auth verifies the bearer tokens that callers present to the gateway.
//
// In AWS, API Gateway's JWT authorizer validates tokens before the gateway Lambda runs, and the handler only
// reads the claims it was handed. Locally (and anywhere the handler is served without API Gateway in front)
// the handler validates the token itself with a [Verifier]; both paths end in the same [Claims] value, so the
// rest of the gateway never knows which one ran.
//
// # What HS256Verifier accepts
//
// [HS256Verifier] checks a compact JWS signed with HMAC-SHA256 and a shared secret of at least 32 bytes. The
// rules, in the order they are applied:
//
//   - the token is at most [MaxTokenBytes] long; longer input is rejected before any decoding, so an
//     unauthenticated caller cannot make the gateway base64-decode and JSON-parse megabytes;
//   - the header's alg is exactly "HS256". "none", every asymmetric algorithm (the classic algorithm
//     confusion attack signs an RS256 token's header with the public key as an HMAC secret) and the other
//     HMAC sizes are refused; the check is pinned with jwt.WithValidMethods and again in the key function;
//   - base64url segments are decoded strictly (no padding, no non-canonical trailing bits), so one token has
//     exactly one spelling;
//   - the signature matches;
//   - exp is present and in the future, nbf (if present) is not in the future and iat (if present) is not in
//     the future, each with [HS256Config.Leeway] of clock skew (30 s by default);
//   - iss is present and equal when [HS256Config.Issuer] is set, aud is present and contains
//     [HS256Config.Audience] when that is set;
//   - sub is present and not empty;
//   - the header carries no "crit" parameter, since no JWS extension is understood (RFC 7515 §4.1.11).
//   - no member appears twice in the header or the claims; the claims this package reads (iss, sub, aud,
//     exp, nbf, iat, jti, scope, scp, client_id) count only when spelled exactly, and a member whose name
//     folds to one of them without being it ("EXP", "ſub") is refused, since encoding/json would read it
//     as that claim; exp, nbf and iat are JSON numbers (not strings holding one), iss and sub strings;
//   - the token lives at most [HS256Config.MaxTTL] ([DefaultMaxTTL], a day, by default): exp-iat, or
//     exp-now when it has no iat.
//
// # What JWKSVerifier accepts
//
// [JWKSVerifier] checks an identity provider's tokens with the public keys it publishes as a JSON Web Key Set,
// as API Gateway's JWT authorizer does in AWS, so the local gateway can take the same tokens. The rules are
// HS256Verifier's, with issuer and audience required (the audience may also be the client_id of a token
// without aud, as in Cognito access tokens: API Gateway's rule), plus: alg is RS256/384/512 or ES256/384 and fits the
// key the header's kid names (an RSA key signs RS*, a P-256 key ES256, a P-384 key ES384, a key that names its
// alg only that one); HMAC algorithms and "none" are refused and symmetric keys in the set ignored, so the
// public set can never become a signing secret; RSA keys under 2048 bits are ignored. Keys are fetched on
// first use, kept for an hour, fetched again early for an unknown kid (at most every 30 s), and kept through a
// provider outage. When no keys can be had, Verify returns [ErrKeysUnavailable], which is not an invalid
// token (the gateway answers 503).
//
// # Errors
//
// Every rejection from Verify wraps [ErrInvalidToken]. Its message names the reason in words a client may see
// ("invalid token: expired", "invalid token: wrong audience", ...) and never repeats the token or any of its
// claims, so it can go into a 401 body and a log line as is. The underlying jwt error is also in the chain
// (errors.Is(err, jwt.ErrTokenExpired) holds) for callers that want to count reasons.
//
// [BearerToken] parses the Authorization header value and distinguishes "no credentials" ([ErrNoCredentials])
// from "credentials we cannot read" ([ErrMalformedHeader]); the gateway answers 401 for all three sentinels.
//
// # Claims
//
// Scopes are read from "scope" (a space-separated string, RFC 8693 §4.2) and, when that is absent, from "scp"
// (a string or an array of strings, as Okta and Entra ID issue it). API Gateway's JWT authorizer reads the same
// two claims, so a route's scope requirements mean the same thing locally and in AWS.
//
// [IssueHS256] mints tokens that HS256Verifier accepts; it exists for the dev-token command and for tests, not
// for production issuance.
package auth
