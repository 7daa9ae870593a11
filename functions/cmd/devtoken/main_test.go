package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/auth"
)

const secret = "0123456789abcdef0123456789abcdef-devtoken-test"

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// runOK runs the command, expects success, and returns the single line it printed.
func runOK(t *testing.T, args []string, getenv func(string) string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := run(args, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v (stderr %q)", err, stderr.String())
	}
	out := stdout.String()
	if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("stdout = %q, want exactly one line", out)
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr = %q, want nothing", stderr.String())
	}
	return strings.TrimSuffix(out, "\n")
}

func verify(t *testing.T, cfg auth.HS256Config, token string) auth.Claims {
	t.Helper()
	v, err := auth.NewHS256(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(context.Background(), token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return c
}

func TestRunFromEnv(t *testing.T) {
	t.Parallel()
	tok := runOK(t, nil, env(map[string]string{
		"JWT_SECRET": secret, "JWT_ISSUER": "local-dev", "JWT_AUDIENCE": "scrape-api",
	}))
	c := verify(t, auth.HS256Config{Secret: []byte(secret), Issuer: "local-dev", Audience: "scrape-api"}, tok)
	if c.Subject != "dev" {
		t.Errorf("Subject = %q, want dev", c.Subject)
	}
	if d := time.Until(c.ExpiresAt); d < 23*time.Hour || d > 24*time.Hour {
		t.Errorf("expires in %v, want about 24h", d)
	}
}

func TestRunFlags(t *testing.T) {
	t.Parallel()
	tok := runOK(t, []string{"-sub", "alice", "-ttl", "5m", "-iss", "flag-iss", "-aud", "flag-aud", "-scope", "a b"},
		env(map[string]string{"JWT_SECRET": secret, "JWT_ISSUER": "env-iss", "JWT_AUDIENCE": "env-aud"}))
	c := verify(t, auth.HS256Config{Secret: []byte(secret), Issuer: "flag-iss", Audience: "flag-aud"}, tok)
	if c.Subject != "alice" || len(c.Scopes) != 2 {
		t.Errorf("claims = %+v", c)
	}
	if d := time.Until(c.ExpiresAt); d > 5*time.Minute {
		t.Errorf("expires in %v, want at most 5m", d)
	}
}

func TestRunSecretFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "jwt-secret")
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := runOK(t, []string{"-secret-file", path}, env(nil))
	verify(t, auth.HS256Config{Secret: []byte(secret)}, tok)
}

func TestRunErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // substrings of the error
	}{
		{"no secret", []string{"-secret-file", missing}, nil, []string{"JWT_SECRET", missing}},
		{"empty secret file", []string{"-secret-file", empty}, nil, []string{"JWT_SECRET", empty, "empty"}},
		{"short secret", nil, map[string]string{"JWT_SECRET": "short"}, []string{"at least 32 bytes"}},
		{"zero ttl", []string{"-ttl", "0s"}, map[string]string{"JWT_SECRET": secret}, []string{"ttl"}},
		{"empty sub", []string{"-sub", ""}, map[string]string{"JWT_SECRET": secret}, []string{"subject"}},
		{"bad flag", []string{"-nope"}, map[string]string{"JWT_SECRET": secret}, []string{"nope"}},
		{"stray argument", []string{"extra"}, map[string]string{"JWT_SECRET": secret}, []string{"extra"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			err := run(tt.args, env(tt.env), &stdout, &stderr)
			if err == nil {
				t.Fatalf("run succeeded, printed %q", stdout.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing on error", stdout.String())
			}
		})
	}
}

// The default secret file is relative to the working directory, as `make token` runs from the repo root.
func TestDefaultSecretFileName(t *testing.T) {
	t.Chdir(t.TempDir()) // a folder with no .local/jwt-secret
	var stdout, stderr bytes.Buffer
	err := run(nil, env(nil), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "JWT_SECRET") || !strings.Contains(err.Error(), ".local/jwt-secret") {
		t.Fatalf("error = %v, want one naming JWT_SECRET and .local/jwt-secret", err)
	}
}
