package s3client

import (
	"strings"
	"testing"
)

func TestNewChecksLocally(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		cfg  Config
		want string // in the error; "" means no error
	}{
		"one key":           {cfg: Config{AccessKey: "a", Endpoint: "http://127.0.0.1:1"}, want: "both the access key and the secret key"},
		"bad endpoint":      {cfg: Config{Endpoint: "ftp://x"}, want: "not an http(s) URL"},
		"endpoint defaults": {cfg: Config{Endpoint: "http://127.0.0.1:1", AccessKey: "a", SecretKey: "s", MaxAttempts: 3}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := New(t.Context(), tc.cfg)
			if tc.want == "" {
				if err != nil || c == nil {
					t.Fatalf("client %v, error %v", c, err)
				}
				if got := c.Options().Region; got != "us-east-1" || !c.Options().UsePathStyle {
					t.Fatalf("region %q, path style %v", got, c.Options().UsePathStyle)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestNormalizePrefix(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"": "", "scripts": "scripts/", "/scripts/": "scripts/", "a/b": "a/b/"} {
		if got := NormalizePrefix(in); got != want {
			t.Errorf("NormalizePrefix(%q) = %q, want %q", in, got, want)
		}
	}
}
