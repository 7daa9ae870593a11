package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/scrapeplatform/platform/shared/webhook"
)

// secretBytes is the length of a generated JWT secret (HS256 wants at least
// 32 bytes).
const secretBytes = 32

// loadOrCreateSecret returns the secret kept in path, creating the file
// (mode 0600, 32 random bytes hex-encoded) when it is missing or empty. The
// same file is what `make token` signs with, so tokens survive restarts.
func loadOrCreateSecret(path string) (secret string, created bool, err error) {
	return loadOrCreate(path, func() (string, error) {
		buf := make([]byte, secretBytes)
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		return hex.EncodeToString(buf), nil
	})
}

// loadOrCreateWebhookSecret is loadOrCreateSecret for the webhook signing secret: a Standard Webhooks
// secret (whsec_ and 32 random bytes in base64) that receivers of make run's callbacks verify with.
func loadOrCreateWebhookSecret(path string) (secret string, created bool, err error) {
	return loadOrCreate(path, func() (string, error) {
		s, err := webhook.NewSecret()
		if err != nil {
			return "", err
		}
		return s.Encode(), nil
	})
}

// loadOrCreate returns the secret kept in path, creating the file (mode 0600) with a new secret from
// generate when it is missing or empty.
func loadOrCreate(path string, generate func() (string, error)) (secret string, created bool, err error) {
	if s, err := readSecret(path); err == nil && s != "" {
		return s, false, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	if secret, err = generate(); err != nil {
		return "", false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, err
	}
	// Write to a temporary file and rename, so a reader never sees half a
	// secret and a concurrent start never sees an empty one.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return "", false, err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", false, err
	}
	if _, err := tmp.WriteString(secret + "\n"); err != nil {
		tmp.Close()
		return "", false, err
	}
	if err := tmp.Close(); err != nil {
		return "", false, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", false, fmt.Errorf("save %s: %w", filepath.Base(path), err)
	}
	return secret, true, nil
}

func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
