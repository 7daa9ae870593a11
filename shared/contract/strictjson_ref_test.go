package contract

import (
	"bytes"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// scanJSONTokens is the reference for scanJSON: the same checks over json.Decoder.Token. It walks doc token by token and reports the first duplicate key (dups) or out-of-range number
// (numbers). It walks iteratively: depth costs memory for one frame per level, never stack.
func scanJSONTokens(doc []byte, root string, dups, numbers bool) error {
	type frame struct {
		object bool
		keys   map[string]struct{}
		key    string // object: the key whose value comes next (or came last)
		index  int    // array: the index of the next value
		hasKey bool   // object: key holds the next value's key
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var stack []*frame
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
	// value is called before each value; it moves the enclosing frame past it afterwards (see advance).
	advance := func() {
		if len(stack) == 0 {
			return
		}
		top := stack[len(stack)-1]
		if top.object {
			top.hasKey = false
		} else {
			top.index++
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && !top.hasKey {
			// In an object, a string token where a key is due is the key.
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				advance()
				continue
			}
			key, _ := tok.(string)
			if dups {
				if _, seen := top.keys[key]; seen {
					top.key, top.hasKey = "", false
					return &DuplicateKeyError{Path: path(), Key: key}
				}
				top.keys[key] = struct{}{}
			}
			top.key, top.hasKey = key, true
			continue
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				f := &frame{object: true}
				if dups {
					f.keys = map[string]struct{}{}
				}
				stack = append(stack, f)
			case '[':
				stack = append(stack, &frame{})
			case ']':
				stack = stack[:len(stack)-1]
				advance()
			}
		case json.Number:
			if numbers {
				if err := checkNumber(string(t)); err != nil {
					err.Path = path()
					return err
				}
			}
			advance()
		default:
			advance()
		}
	}
}

// FuzzScanJSON checks the byte scanner against the reference on valid UTF-8 JSON: the same verdict and the
// same error (duplicate key or number, with its path).
func FuzzScanJSON(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `{"a":{"b":[{"c":1,"\u0063":1}]}}`, `[1,-9007199254740993]`,
		`{"x y":[1e400]}`, `{"a":"\"","b":"}","a":0}`, `{"\ud800":1,"\udc00":2}`, `[[],{},[{}]]`, `{"k":[{"k":1},{"k":1}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if !json.Valid(doc) || !utf8.Valid(doc) {
			return
		}
		got, want := scanJSON(doc, "p", true, true), scanJSONTokens(doc, "p", true, true)
		if (got == nil) != (want == nil) || got != nil && got.Error() != want.Error() {
			t.Fatalf("scanJSON(%q) = %v, reference %v", doc, got, want)
		}
	})
}
