package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBannerAndREADMEAgree checks that every command the "stack ready" banner prints, for the default
// gateway address, is a line of the root README's quick start, and that both name the EGRESS_ALLOW the demo
// page needs.
func TestBannerAndREADMEAgree(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]bool{}
	for _, l := range strings.Split(string(readme), "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, allow := range []string{"", "127.0.0.1:8765"} {
		banner := callText("http://127.0.0.1:8080", allow)
		var commands int
		for _, l := range strings.Split(banner, "\n") {
			if !strings.HasPrefix(l, "  ") {
				continue
			}
			commands++
			if !lines[strings.TrimSpace(l)] {
				t.Errorf("the banner's command %q is not in README.md", strings.TrimSpace(l))
			}
		}
		if commands < 4 {
			t.Errorf("the banner shows %d commands:\n%s", commands, banner)
		}
		for _, want := range []string{"EGRESS_ALLOW=" + demoAddr, "http://" + demoAddr + "/", "make demo", "needs internet access", "https://example.com"} {
			if !strings.Contains(banner, want) {
				t.Errorf("the banner lacks %q:\n%s", want, banner)
			}
		}
	}
	if !strings.Contains(callText("http://127.0.0.1:8080", ""), "EGRESS_ALLOW="+demoAddr+" make run") {
		t.Error("a stack started without EGRESS_ALLOW does not say how to restart it")
	}
	if !lines["EGRESS_ALLOW="+demoAddr+" make run   # broker, S3 server with scripts/, gateway on http://127.0.0.1:8080, two workers, Prometheus; Ctrl-C stops all"] {
		t.Error("README.md's quick start does not start the stack with EGRESS_ALLOW=" + demoAddr)
	}
	makefile, err := os.ReadFile(filepath.Join("..", "..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(makefile), "http.server 8765 --bind 127.0.0.1 --directory local/demo") {
		t.Error("make demo does not serve local/demo on " + demoAddr)
	}
}
