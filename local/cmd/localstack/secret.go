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
)

// secretBytes is the length of a generated JWT secret (HS256 wants at least
// 32 bytes).
const secretBytes = 32

// loadOrCreateSecret returns the secret kept in path, creating the file
// (mode 0600, 32 random bytes hex-encoded) when it is missing or empty. The
// same file is what `make token` signs with, so tokens survive restarts.
func loadOrCreateSecret(path string) (secret string, created bool, err error) {
	if s, err := readSecret(path); err == nil && s != "" {
		return s, false, nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	buf := make([]byte, secretBytes)
	if _, err := rand.Read(buf); err != nil {
		return "", false, err
	}
	secret = hex.EncodeToString(buf)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", false, err
	}
	// Write to a temporary file and rename, so a reader never sees half a
	// secret and a concurrent start never sees an empty one.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".jwt-secret-*")
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
		return "", false, fmt.Errorf("save JWT secret: %w", err)
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
