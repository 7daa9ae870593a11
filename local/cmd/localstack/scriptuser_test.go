package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/scrapeplatform/platform/shared/scripttest"
)

// TestScriptUser: run as root without SCRIPT_RUN_AS, localstack has scripts run as nobody when that user
// can run an interpreter and read the scripts, and otherwise falls back with one warning that says what
// to set; not root, or SCRIPT_RUN_AS set, it changes nothing.
func TestScriptUser(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if e, note, warning := scriptUser(t.Context(), env(nil), 1000, ""); e != nil || note != "" || warning != "" {
		t.Errorf("not root: %v %q %q", e, note, warning)
	}
	if e, note, warning := scriptUser(t.Context(), env(map[string]string{"SCRIPT_RUN_AS": "10002"}), 0, ""); e != nil || note != "" || warning != "" {
		t.Errorf("SCRIPT_RUN_AS set: %v %q %q", e, note, warning)
	}
	if e, note, warning := scriptUser(t.Context(), env(map[string]string{"SCRIPT_UID_RANGE": "300000-300999"}), 0, ""); e != nil || note != "" || warning != "" {
		t.Errorf("SCRIPT_UID_RANGE set: %v %q %q", e, note, warning)
	}
	if os.Geteuid() != 0 {
		return // the rest runs interpreters as another user, which needs root (CI runs as root)
	}
	reachable := scripttest.Dir(t, "echo")
	e, note, warning := scriptUser(t.Context(), env(map[string]string{"PATH": os.Getenv("PATH")}), 0, reachable)
	if warning != "" || !slices.Contains(e, "SCRIPT_UID_RANGE=200000-265535") || !strings.Contains(note, "uids of their own") {
		t.Errorf("reachable scripts: env %v, note %q, warning %q", e, note, warning)
	}
	private := t.TempDir()
	if err := os.Chmod(private, 0o700); err != nil { // the scripts' uids cannot enter it
		t.Fatal(err)
	}
	hidden := filepath.Join(private, "scripts")
	if err := os.Mkdir(hidden, 0o755); err != nil {
		t.Fatal(err)
	}
	e, note, warning = scriptUser(t.Context(), env(nil), 0, hidden)
	if e != nil || note != "" || !strings.Contains(warning, "scripts run as ROOT") || !strings.Contains(warning, "SCRIPT_RUN_AS") ||
		!strings.Contains(warning, "cannot reach the script folder") {
		t.Errorf("unreachable scripts: env %v, note %q, warning %q", e, note, warning)
	}
}
