package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestBearerToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		header string
		want   string
		err    error
	}{
		{"bearer", "Bearer abc.def.ghi", "abc.def.ghi", nil},
		{"lower-case scheme", "bearer abc.def.ghi", "abc.def.ghi", nil},
		{"upper-case scheme", "BEARER abc", "abc", nil},
		{"surrounding whitespace", "  Bearer abc  ", "abc", nil},
		{"several spaces", "Bearer    abc", "abc", nil},
		{"b64token alphabet", "Bearer aZ09-._~+/==", "aZ09-._~+/==", nil},
		{"empty", "", "", ErrNoCredentials},
		{"blank", "   \t ", "", ErrNoCredentials},
		{"scheme only", "Bearer", "", ErrMalformedHeader},
		{"scheme and space", "Bearer ", "", ErrMalformedHeader},
		{"basic", "Basic dXNlcjpwYXNz", "", ErrMalformedHeader},
		{"token without scheme", "abc.def.ghi", "", ErrMalformedHeader},
		{"scheme prefix", "Bearerabc", "", ErrMalformedHeader},
		{"two tokens", "Bearer abc def", "", ErrMalformedHeader},
		{"tab separator", "Bearer\tabc", "", ErrMalformedHeader},
		{"only padding", "Bearer ==", "", ErrMalformedHeader},
		{"padding in the middle", "Bearer a=b", "", ErrMalformedHeader},
		{"quoted", `Bearer "abc"`, "", ErrMalformedHeader},
		{"comma", "Bearer abc, Basic xyz", "", ErrMalformedHeader},
		{"non-ASCII", "Bearer abcé", "", ErrMalformedHeader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := BearerToken(tt.header)
			if tt.err == nil {
				if err != nil || got != tt.want {
					t.Fatalf("BearerToken(%q) = %q, %v; want %q", tt.header, got, err, tt.want)
				}
				return
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("BearerToken(%q) error = %v, want %v", tt.header, err, tt.err)
			}
			if got != "" {
				t.Errorf("token %q returned with an error", got)
			}
			if h := strings.TrimSpace(tt.header); len(h) >= 8 && strings.Contains(err.Error(), h) {
				t.Errorf("error %q echoes the header", err)
			}
		})
	}
}
