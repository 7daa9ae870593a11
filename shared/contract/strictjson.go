package contract

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MaxSafeInteger is the largest magnitude of an integer that every side of the platform represents
// exactly: 2^53. Go (encoding/json into any), JavaScript clients and the worker's float64 paths read JSON
// numbers as IEEE doubles, which are exact for integers up to it; Python reads integers exactly but refuses
// ones longer than 4300 digits. A parameter beyond it would mean different numbers to different readers.
const MaxSafeInteger = 1 << 53

// DuplicateKeyError reports a JSON object that names the same key twice (keys compared after unescaping, so
// "a" and "\u0061" are the same key). Parsers disagree on which value wins (Go and Python keep the last,
// others the first or refuse), so a document with one is ambiguous and is refused.
type DuplicateKeyError struct {
	// Path locates the object, e.g. "parameters.filters[2]"; Key is the repeated key.
	Path, Key string
}

func (e *DuplicateKeyError) Error() string {
	return fmt.Sprintf("duplicate key %q in %s: a key may appear only once in an object (JSON parsers disagree on which value wins)",
		truncate(e.Key, 80), e.Path)
}

// NumberError reports a JSON number that not every side of the platform reads as the same value.
type NumberError struct {
	// Path locates the number, e.g. "parameters.ids[0]"; Literal is how it was written.
	Path, Literal string
	// Integer is true for an integer beyond ±MaxSafeInteger, false for a number beyond the range of a double.
	Integer bool
}

func (e *NumberError) Error() string {
	if e.Integer {
		return fmt.Sprintf("%s: integer %s is beyond ±2^53 (%d), the largest every part of the platform represents exactly; send it as a string",
			e.Path, truncate(e.Literal, 40), MaxSafeInteger)
	}
	return fmt.Sprintf("%s: number %s is out of range (larger than a 64-bit float can hold); send it as a string", e.Path, truncate(e.Literal, 40))
}

// CheckDuplicateKeys reports the first object in doc, at any depth, that names a key twice, as a
// *DuplicateKeyError located under root ("body", "parameters"). doc must be valid JSON; an error reading it
// is returned as is.
func CheckDuplicateKeys(doc []byte, root string) error {
	return scanJSON(doc, root, true, false)
}

// scanJSON walks doc, which must be valid JSON, and reports the first duplicate key (dups) or out-of-range
// number (numbers). It scans bytes, iteratively (depth costs one frame per level, never stack), and decodes
// only keys that hold escapes; it is an order of magnitude faster than json.Decoder's Token, which
// matters on the gateway's path (a 256 KiB body is scanned in a few milliseconds).
func scanJSON(doc []byte, root string, dups, numbers bool) error {
	type frame struct {
		object bool
		few    []string            // object: its keys so far, while there are few
		keys   map[string]struct{} // object: its keys so far, once there are many
		key    string              // object: the key of the value being read
		hasKey bool                // object: key is set (between the key and the end of its value)
		index  int                 // array: the index of the value being read
	}
	var stack []frame // frames are values, reused with their key slices as the walk goes up and down
	push := func(object bool) {
		if n := len(stack); n < cap(stack) {
			stack = stack[:n+1]
			f := &stack[n]
			*f = frame{object: object, few: f.few[:0]}
			return
		}
		stack = append(stack, frame{object: object})
	}
	path := func() string {
		var b strings.Builder
		b.WriteString(root)
		for _, f := range stack {
			switch {
			case f.object && f.hasKey && isIdentifier(f.key):
				b.WriteString("." + f.key)
			case f.object && f.hasKey:
				b.WriteString("[" + strconv.Quote(truncate(f.key, 40)) + "]")
			case !f.object:
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
			}
		}
		return b.String()
	}
	for i := 0; i < len(doc); i++ {
		c := doc[i]
		switch {
		case c == '"':
			end, escaped := stringEnd(doc, i)
			if end < 0 {
				return errors.New("unterminated string")
			}
			if n := len(stack); n > 0 && stack[n-1].object && !stack[n-1].hasKey {
				top := &stack[n-1]
				raw := doc[i+1 : end]
				var key string
				if escaped {
					if err := json.Unmarshal(doc[i:end+1], &key); err != nil {
						return err
					}
				} else {
					key = string(raw)
				}
				if dups {
					if seenKey(&top.few, &top.keys, key) {
						return &DuplicateKeyError{Path: path(), Key: key}
					}
				}
				top.key, top.hasKey = key, true
			}
			i = end
		case c == '{':
			push(true)
		case c == '[':
			push(false)
		case c == '}' || c == ']':
			if len(stack) == 0 {
				return errors.New("unbalanced JSON")
			}
			stack = stack[:len(stack)-1]
		case c == ',':
			if n := len(stack); n > 0 {
				if top := &stack[n-1]; top.object {
					top.hasKey = false
				} else {
					top.index++
				}
			}
		case c == '-' || c >= '0' && c <= '9':
			j := i + 1
			for j < len(doc) && (doc[j] >= '0' && doc[j] <= '9' || doc[j] == '.' || doc[j] == 'e' || doc[j] == 'E' || doc[j] == '+' || doc[j] == '-') {
				j++
			}
			if numbers {
				if err := checkNumber(string(doc[i:j])); err != nil {
					err.Path = path()
					return err
				}
			}
			i = j - 1
		}
	}
	return nil
}

// seenKey reports whether key is among an object's keys so far, and adds it. Most objects have few keys,
// which a slice holds without a map's cost; past 16 they move to a map.
func seenKey(few *[]string, many *map[string]struct{}, key string) bool {
	if *many != nil {
		if _, ok := (*many)[key]; ok {
			return true
		}
		(*many)[key] = struct{}{}
		return false
	}
	for _, k := range *few {
		if k == key {
			return true
		}
	}
	if len(*few) < 16 {
		*few = append(*few, key)
		return false
	}
	*many = make(map[string]struct{}, 32)
	for _, k := range *few {
		(*many)[k] = struct{}{}
	}
	(*many)[key] = struct{}{}
	*few = nil
	return false
}

// stringEnd returns the index of the quote that closes the string opening at doc[start], and whether the
// string holds a backslash escape; -1 when it does not close.
func stringEnd(doc []byte, start int) (int, bool) {
	escaped := false
	for i := start + 1; i < len(doc); i++ {
		switch doc[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			return i, escaped
		}
	}
	return -1, escaped
}

// checkNumber reports a literal that is an integer beyond ±MaxSafeInteger or a number beyond a double's
// range. Path is left for the caller.
func checkNumber(lit string) *NumberError {
	if !strings.ContainsAny(lit, ".eE") {
		digits := strings.TrimPrefix(lit, "-")
		const limit = "9007199254740992" // MaxSafeInteger; JSON integers have no leading zeros
		if len(digits) > len(limit) || len(digits) == len(limit) && digits > limit {
			return &NumberError{Literal: lit, Integer: true}
		}
		return nil
	}
	if f, err := strconv.ParseFloat(lit, 64); math.IsInf(f, 0) || err != nil && !errors.Is(err, strconv.ErrRange) {
		return &NumberError{Literal: lit}
	}
	return nil
}

func isIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
