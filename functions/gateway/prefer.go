package gateway

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// preferences are what POST /scrape honours of the Prefer header (RFC 7240): respond-async (answer 202 at
// once) and wait=N (shorten the sync window to N seconds). Other preferences are ignored, as the RFC asks.
type preferences struct {
	respondAsync bool
	wait         time.Duration
	hasWait      bool
}

// maxPreferWait caps wait=N before it is compared with the sync window (a larger N is the window itself).
const maxPreferWait = 24 * time.Hour

// parsePrefer reads every Prefer header value. Its grammar (RFC 7240 §2):
//
//	Prefer     = 1#preference
//	preference = token [ BWS "=" BWS word ] *( OWS ";" [ OWS parameter ] )
//	parameter  = token [ BWS "=" BWS word ]
//	word       = token / quoted-string
//
// Names are case-insensitive; the first instance of a preference counts. A header that does not follow the
// grammar, a wait that is not a whole number of seconds, and respond-async with a value are refused.
func parsePrefer(values []string) (preferences, error) {
	var p preferences
	seen := map[string]bool{}
	for _, v := range values {
		elems, err := splitOutsideQuotes(v, ',')
		if err != nil {
			return p, err
		}
		for _, elem := range elems {
			elem = strings.Trim(elem, " \t")
			if elem == "" {
				continue // 1#: empty list elements are allowed and ignored
			}
			parts, err := splitOutsideQuotes(elem, ';')
			if err != nil {
				return p, err
			}
			name, value, hasValue, err := parsePreferPair(parts[0])
			if err != nil {
				return p, err
			}
			for _, param := range parts[1:] {
				if strings.Trim(param, " \t") == "" {
					continue
				}
				if _, _, _, err := parsePreferPair(param); err != nil {
					return p, err
				}
			}
			name = strings.ToLower(name)
			if seen[name] {
				continue
			}
			seen[name] = true
			switch name {
			case "respond-async":
				if hasValue {
					return p, errors.New("header Prefer: respond-async takes no value")
				}
				p.respondAsync = true
			case "wait":
				d, err := parseDeltaSeconds(value, hasValue)
				if err != nil {
					return p, err
				}
				p.wait, p.hasWait = d, true
			}
		}
	}
	return p, nil
}

// parseDeltaSeconds reads wait's value: 1*DIGIT, capped at maxPreferWait.
func parseDeltaSeconds(value string, hasValue bool) (time.Duration, error) {
	bad := fmt.Errorf("header Prefer: wait must be a whole number of seconds (wait=10), not %q", value)
	if !hasValue || value == "" {
		return 0, errors.New("header Prefer: wait needs a number of seconds (wait=10)")
	}
	for _, c := range value {
		if c < '0' || c > '9' {
			return 0, bad
		}
	}
	n, err := strconv.ParseUint(value, 10, 64)
	if err != nil || n > uint64(maxPreferWait/time.Second) {
		return maxPreferWait, nil // only digits: too large is simply "as long as you allow"
	}
	return time.Duration(n) * time.Second, nil
}

// parsePreferPair reads token [ BWS "=" BWS word ].
func parsePreferPair(s string) (name, value string, hasValue bool, err error) {
	s = strings.Trim(s, " \t")
	name, rest, hasValue := strings.Cut(s, "=")
	name = strings.TrimRight(name, " \t")
	if !isToken(name) {
		return "", "", false, fmt.Errorf("header Prefer: %q is not a preference (RFC 7240: a token, optionally =value)", truncate(s, 40))
	}
	if !hasValue {
		return name, "", false, nil
	}
	rest = strings.TrimLeft(rest, " \t")
	if strings.HasPrefix(rest, `"`) {
		v, ok := unquote(rest)
		if !ok {
			return "", "", false, fmt.Errorf("header Prefer: the value of %s is a malformed quoted string", name)
		}
		return name, v, true, nil
	}
	if rest != "" && !isToken(rest) {
		return "", "", false, fmt.Errorf("header Prefer: the value of %s must be a token or a quoted string", name)
	}
	return name, rest, true, nil
}

// splitOutsideQuotes splits s at sep where sep is not inside a quoted string.
func splitOutsideQuotes(s string, sep byte) ([]string, error) {
	var out []string
	start, inQuote := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inQuote && c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case !inQuote && c == sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	if inQuote {
		return nil, errors.New("header Prefer: a quoted string is not closed")
	}
	return append(out, s[start:]), nil
}

// unquote reads a whole quoted-string (RFC 9110 §5.6.4).
func unquote(s string) (string, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", false
	}
	var b strings.Builder
	for i := 1; i < len(s)-1; i++ {
		c := s[i]
		switch {
		case c == '\\':
			i++
			if i >= len(s)-1 {
				return "", false
			}
			c = s[i]
		case c == '"':
			return "", false
		}
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return "", false
		}
		b.WriteByte(c)
	}
	return b.String(), true
}

// isToken reports whether s is an RFC 9110 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// applied is the Preference-Applied header value for what was honoured (RFC 7240 §3), "" for nothing.
func (p preferences) applied(window time.Duration) string {
	var out []string
	if p.respondAsync {
		out = append(out, "respond-async")
	}
	if p.hasWait {
		out = append(out, "wait="+strconv.Itoa(int(window/time.Second)))
	}
	return strings.Join(out, ", ")
}

// maxIdempotencyKey is the longest Idempotency-Key accepted.
const maxIdempotencyKey = 255

// idempotencyKey reads the Idempotency-Key header (IETF httpapi draft: a structured-field string; a bare
// value is accepted as well): "" when absent.
func idempotencyKey(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", errors.New("send one Idempotency-Key header, not several")
	}
	v := strings.Trim(values[0], " \t")
	if strings.HasPrefix(v, `"`) {
		u, ok := unquote(v)
		if !ok {
			return "", errors.New("Idempotency-Key is a malformed quoted string")
		}
		v = u
	}
	if v == "" {
		return "", errors.New("Idempotency-Key is empty; send a unique value per operation, such as a UUID")
	}
	if len(v) > maxIdempotencyKey {
		return "", fmt.Errorf("Idempotency-Key is longer than %d characters", maxIdempotencyKey)
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return "", errors.New("Idempotency-Key may hold printable ASCII characters only")
		}
	}
	return v, nil
}
