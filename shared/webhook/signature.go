package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every serialised secret.
const SecretPrefix = "whsec_"

// Key sizes the spec allows for a symmetric secret, in bytes.
const (
	MinKeyBytes = 24
	MaxKeyBytes = 64
)

// Tolerance is how far a delivery's timestamp may be from the receiver's clock, either way.
const Tolerance = 5 * time.Minute

// MaxSignatureHeader bounds the webhook-signature header Verify parses (a handful of signatures during a
// rotation is a few hundred bytes).
const MaxSignatureHeader = 4096

// signatureVersion identifies the HMAC-SHA256 scheme.
const signatureVersion = "v1"

// The errors Verify returns (wrapped with details).
var (
	// ErrMissingHeader: a webhook-* header is absent or empty.
	ErrMissingHeader = errors.New("webhook: missing header")
	// ErrInvalidHeader: a webhook-* header is malformed.
	ErrInvalidHeader = errors.New("webhook: invalid header")
	// ErrTimestamp: the timestamp is further than Tolerance from now.
	ErrTimestamp = errors.New("webhook: timestamp outside the tolerance")
	// ErrNoMatch: no v1 signature matches any of the receiver's secrets.
	ErrNoMatch = errors.New("webhook: no matching signature")
)

// Secret is a symmetric signing key.
type Secret struct{ key []byte }

// NewSecret returns a new random 32-byte secret.
func NewSecret() (Secret, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return Secret{}, fmt.Errorf("webhook: generate secret: %w", err)
	}
	return Secret{key: key}, nil
}

// ParseSecret reads a secret serialised as "whsec_" + base64 (standard alphabet, padded). The prefix may
// be left out, as the reference libraries allow.
func ParseSecret(s string) (Secret, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(strings.TrimSpace(s), SecretPrefix))
	if err != nil {
		return Secret{}, errors.New("webhook: secret is not whsec_ followed by base64")
	}
	if len(key) < MinKeyBytes || len(key) > MaxKeyBytes {
		return Secret{}, fmt.Errorf("webhook: secret key is %d bytes; it must be %d to %d", len(key), MinKeyBytes, MaxKeyBytes)
	}
	return Secret{key: key}, nil
}

// Encode serialises the secret as "whsec_" + base64, the form handed to a receiver. It is the secret
// itself: never log it.
func (s Secret) Encode() string { return SecretPrefix + base64.StdEncoding.EncodeToString(s.key) }

// String hides the key, so a Secret printed or logged by mistake does not leak it.
func (s Secret) String() string { return SecretPrefix + "[redacted]" }

// GoString hides the key from %#v too.
func (s Secret) GoString() string { return "webhook.Secret{" + SecretPrefix + "[redacted]}" }

// IsZero reports a Secret that holds no key.
func (s Secret) IsZero() bool { return len(s.key) == 0 }

// mac returns the raw HMAC-SHA256 of "id.timestamp.body".
func (s Secret) mac(id string, timestamp int64, body []byte) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write(strconv.AppendInt(nil, timestamp, 10))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Signature returns one "v1,<base64>" signature of the delivery.
func (s Secret) Signature(id string, timestamp time.Time, body []byte) string {
	return signatureVersion + "," + base64.StdEncoding.EncodeToString(s.mac(id, timestamp.Unix(), body))
}

// Sign returns the three headers of a delivery of body with message id at timestamp (whole seconds), signed
// with secret and, during a key rotation, with the older secrets too. The id must be non-empty, without
// ".", spaces or control characters (the spec forbids "." so the signed content cannot be shifted).
func Sign(secret Secret, id string, timestamp time.Time, body []byte, older ...Secret) (http.Header, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	sigs := make([]string, 0, 1+len(older))
	for _, s := range append([]Secret{secret}, older...) {
		if s.IsZero() {
			return nil, errors.New("webhook: sign with an empty secret")
		}
		sigs = append(sigs, s.Signature(id, timestamp, body))
	}
	h := http.Header{}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(timestamp.Unix(), 10))
	h.Set(HeaderSignature, strings.Join(sigs, " "))
	return h, nil
}

func checkID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty %s", ErrInvalidHeader, HeaderID)
	}
	for _, r := range id {
		if r == '.' || r <= ' ' || r == 0x7f {
			return fmt.Errorf("%w: %s %q holds %q", ErrInvalidHeader, HeaderID, id, r)
		}
	}
	return nil
}

// Verify checks a delivery as a receiver: the headers are present and well formed, the timestamp is within
// Tolerance of now, and at least one v1 signature in the header matches one of secrets (constant-time
// comparison). It returns nil for an authentic delivery, otherwise an error wrapping ErrMissingHeader,
// ErrInvalidHeader, ErrTimestamp or ErrNoMatch. The body must be the raw bytes received, not re-encoded.
func Verify(secrets []Secret, headers http.Header, body []byte, now time.Time) error {
	id, ts, sigs, err := parseHeaders(headers)
	if err != nil {
		return err
	}
	if d := now.Sub(time.Unix(ts, 0)); d > Tolerance || d < -Tolerance {
		return fmt.Errorf("%w: %s %d is %s from now", ErrTimestamp, HeaderTimestamp, ts, d.Round(time.Second))
	}
	for _, s := range secrets {
		if s.IsZero() {
			continue
		}
		want := s.mac(id, ts, body)
		for _, sig := range sigs {
			if hmac.Equal(sig, want) {
				return nil
			}
		}
	}
	return ErrNoMatch
}

// parseHeaders reads the three headers: the id, the timestamp and the decoded v1 signatures (other
// versions are skipped; an empty list of v1 signatures is an error).
func parseHeaders(headers http.Header) (id string, ts int64, sigs [][]byte, err error) {
	id = headers.Get(HeaderID)
	rawTS := headers.Get(HeaderTimestamp)
	rawSig := headers.Get(HeaderSignature)
	for _, h := range []struct{ name, v string }{{HeaderID, id}, {HeaderTimestamp, rawTS}, {HeaderSignature, rawSig}} {
		if h.v == "" {
			return "", 0, nil, fmt.Errorf("%w: %s", ErrMissingHeader, h.name)
		}
	}
	if err := checkID(id); err != nil {
		return "", 0, nil, err
	}
	ts, perr := strconv.ParseInt(rawTS, 10, 64)
	if perr != nil || ts < 0 || rawTS[0] == '+' {
		return "", 0, nil, fmt.Errorf("%w: %s %q is not Unix seconds", ErrInvalidHeader, HeaderTimestamp, rawTS)
	}
	if len(rawSig) > MaxSignatureHeader {
		return "", 0, nil, fmt.Errorf("%w: %s is %d bytes; at most %d are read", ErrInvalidHeader, HeaderSignature, len(rawSig), MaxSignatureHeader)
	}
	for _, field := range strings.Fields(rawSig) {
		version, value, ok := strings.Cut(field, ",")
		if !ok || version == "" {
			return "", 0, nil, fmt.Errorf("%w: %s entry %q is not version,signature", ErrInvalidHeader, HeaderSignature, field)
		}
		if version != signatureVersion {
			continue
		}
		sig, derr := base64.StdEncoding.DecodeString(value)
		if derr != nil || len(sig) != sha256.Size {
			// A garbled v1 entry cannot match; another entry still may (the reference verifier skips it too).
			continue
		}
		sigs = append(sigs, sig)
	}
	if len(sigs) == 0 {
		return "", 0, nil, fmt.Errorf("%w: %s holds no v1 signature", ErrNoMatch, HeaderSignature)
	}
	return id, ts, sigs, nil
}
