// Command devtoken prints a JWT that the local gateway accepts, for `make token`:
//
//	curl -H "Authorization: Bearer $(go run ./functions/cmd/devtoken)" localhost:8080/health   # from the repo root
//
// Only the token and a newline go to stdout; errors go to stderr. The HS256 secret is JWT_SECRET, or, when
// that is unset or empty, the contents of -secret-file (default ./.local/jwt-secret) with trailing newlines
// removed, which is what `JWT_SECRET=$(cat .local/jwt-secret)` hands the gateway.
//
//	| Flag / variable          | Default             | Meaning                                     |
//	|--------------------------|---------------------|---------------------------------------------|
//	| JWT_SECRET               | (none)              | HS256 secret, at least 32 bytes             |
//	| -secret-file             | .local/jwt-secret   | read when JWT_SECRET is empty               |
//	| -sub                     | dev                 | the token's subject                         |
//	| -ttl                     | 24h                 | lifetime                                    |
//	| -iss / JWT_ISSUER        | (none)              | issuer; must match the gateway's JWT_ISSUER |
//	| -aud / JWT_AUDIENCE      | (none)              | audience; must match the gateway's          |
//	| -scope                   | (none)              | space-separated scopes                      |
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/scrapeplatform/platform/shared/auth"
)

const defaultSecretFile = ".local/jwt-secret"

func main() {
	err := run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	default:
		fmt.Fprintln(os.Stderr, "devtoken:", err)
		os.Exit(1)
	}
}

// run parses args, issues the token and writes it to stdout. Usage problems are written to stderr by the flag
// package and returned as errors.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	flags := flag.NewFlagSet("devtoken", flag.ContinueOnError)
	flags.SetOutput(stderr)
	secretFile := flags.String("secret-file", defaultSecretFile, "file holding the HS256 secret, read when JWT_SECRET is empty")
	sub := flags.String("sub", "dev", "subject (sub claim)")
	ttl := flags.Duration("ttl", 24*time.Hour, "token lifetime")
	iss := flags.String("iss", getenv("JWT_ISSUER"), "issuer (iss claim); defaults to $JWT_ISSUER")
	aud := flags.String("aud", getenv("JWT_AUDIENCE"), "audience (aud claim); defaults to $JWT_AUDIENCE")
	scope := flags.String("scope", "", "space-separated scopes (scope claim)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", flags.Args())
	}

	secret, err := loadSecret(getenv, *secretFile)
	if err != nil {
		return err
	}
	c := auth.Claims{Subject: *sub, Issuer: *iss, Scopes: strings.Fields(*scope)}
	if *aud != "" {
		c.Audience = []string{*aud}
	}
	token, err := auth.IssueHS256(secret, c, *ttl)
	if err != nil {
		return fmt.Errorf("issue token: %w", err)
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}

// loadSecret returns JWT_SECRET, or the secret file's contents without trailing newlines.
func loadSecret(getenv func(string) string, path string) ([]byte, error) {
	if s := getenv("JWT_SECRET"); s != "" {
		return []byte(s), nil
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("no JWT secret: JWT_SECRET is not set and %s does not exist "+
			"(create one with: mkdir -p .local && openssl rand -base64 48 > .local/jwt-secret)", path)
	case err != nil:
		return nil, fmt.Errorf("no JWT secret: JWT_SECRET is not set and reading %s failed: %w", path, err)
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) == 0 {
		return nil, fmt.Errorf("no JWT secret: JWT_SECRET is not set and %s is empty", path)
	}
	return b, nil
}
