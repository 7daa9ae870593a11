package envcache

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/config"
)

// The environment-cache cases of the former worker/internal/config's TestLoadExec.
func TestLoadConfig(t *testing.T) {
	t.Parallel()
	e := config.NewEnv(func(string) string { return "" })
	c := LoadConfig(e, "/w")
	if err := e.Err(); err != nil || c.Root != "/w/envs" || c.MaxBytes != 5120<<20 || c.BuildTimeout != 10*time.Minute {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	env := map[string]string{"ENV_CACHE_MAX_MB": "-1", "ENV_BUILD_TIMEOUT": "1s"}
	e = config.NewEnv(func(k string) string { return env[k] })
	LoadConfig(e, "/w")
	for k := range env {
		if err := e.Err(); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("error does not name %s: %v", k, err)
		}
	}
}

// Shutdown interrupts a build in flight: the waiting Get fails at once, not at BuildTimeout.
func TestShutdownInterruptsBuilds(t *testing.T) {
	t.Parallel()
	// An index that accepts connections and never answers keeps pip busy until it is killed.
	pipEnv := map[string]string{"PIP_INDEX_URL": "http://" + hangingListener(t) + "/simple", "PIP_DEFAULT_TIMEOUT": "600", "PIP_RETRIES": "0"}
	f := newFixture(t, func(c *Config) {
		c.Metrics = nil // the default records nothing
		c.Getenv = func(k string) string { return pipEnv[k] }
	})
	got := make(chan error, 1)
	go func() {
		_, err := f.cache.Get(context.Background(), requirements(t, "hangs-forever-pkg==1.0\n"))
		got <- err
	}()
	for {
		f.cache.mu.Lock()
		n := len(f.cache.building)
		f.cache.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := f.cache.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err == nil {
		t.Fatal("the interrupted build succeeded")
	}
	if f.builds.Load() != 0 {
		t.Fatal("nil Metrics: the fixture's counters must stay untouched")
	}
}

// hangingListener accepts connections on loopback and never answers; it returns its address.
func hangingListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	return ln.Addr().String()
}
