package auth

import (
	"fmt"
	"strings"
)

// BearerToken extracts the token from an Authorization header value of the form "Bearer <token>" (RFC 6750
// §2.1). The scheme is matched case-insensitively; surrounding whitespace and extra spaces between scheme and
// token are tolerated. It returns ErrNoCredentials for an empty or blank value and an error wrapping
// ErrMalformedHeader for anything else it cannot read: another scheme, no token, or a token with characters
// outside the b64token alphabet. Errors never quote the header.
func BearerToken(header string) (string, error) {
	header = strings.TrimSpace(header)
	if header == "" {
		return "", ErrNoCredentials
	}
	scheme, token, found := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("%w: scheme must be Bearer", ErrMalformedHeader)
	}
	token = strings.TrimLeft(token, " ")
	if !found || token == "" {
		return "", fmt.Errorf("%w: missing token after Bearer", ErrMalformedHeader)
	}
	if !isB64Token(token) {
		return "", fmt.Errorf("%w: token contains characters not allowed in a bearer token", ErrMalformedHeader)
	}
	return token, nil
}

// isB64Token reports whether s matches RFC 6750's b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
		default:
			return false
		}
	}
	return true
}
