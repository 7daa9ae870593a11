package auth

import "errors"

// Sentinel errors. Match them with errors.Is; the gateway answers 401 for each of them.
var (
	// ErrNoCredentials means the request carried no Authorization header (or an empty one).
	ErrNoCredentials = errors.New("no credentials")
	// ErrMalformedHeader means the Authorization header is present but is not "Bearer <token>".
	ErrMalformedHeader = errors.New("malformed authorization header")
	// ErrInvalidToken means the token was read but rejected: bad signature, expired, wrong audience, etc.
	ErrInvalidToken = errors.New("invalid token")
)

// Reasons a token is rejected. They end up in client-visible error messages, so they name the rule the token
// broke and never any part of the token.
const (
	reasonEmpty       = "empty"
	reasonTooLarge    = "too large"
	reasonMalformed   = "malformed"
	reasonAlgorithm   = "unexpected signing algorithm"
	reasonSignature   = "bad signature"
	reasonExpired     = "expired"
	reasonNotYetValid = "not valid yet"
	reasonIssuedLater = "issued in the future"
	reasonIssuer      = "wrong issuer"
	reasonAudience    = "wrong audience"
	reasonCrit        = "unsupported critical header"
)

// tokenError is what Verify returns. Its message is "invalid token: <reason>"; it unwraps to ErrInvalidToken
// and, when there is one, to the jwt library's error, whose text is deliberately kept out of Error() (a JSON
// decoding error can quote parts of the claims).
type tokenError struct {
	reason string
	cause  error
}

func (e *tokenError) Error() string { return ErrInvalidToken.Error() + ": " + e.reason }

func (e *tokenError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrInvalidToken}
	}
	return []error{ErrInvalidToken, e.cause}
}

func invalid(reason string, cause error) error { return &tokenError{reason: reason, cause: cause} }
