package config

import (
	"strings"
	"testing"
)

func TestLoadSecurity(t *testing.T) {
	t.Parallel()
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }

	s, err := LoadSecurity(env(nil))
	if err != nil || s.Containment != "auto" || s.MaxProcesses != 1024 || s.RunAs || !s.EgressProxy || !s.ProtectSecrets {
		t.Fatalf("defaults: %+v %v", s, err)
	}
	s, err = LoadSecurity(env(map[string]string{"SCRIPT_RUN_AS": "10002", "EGRESS_ALLOW": "10.0.0.0/8", "EGRESS_PROXY": "false",
		"SCRIPT_CONTAINMENT": "session", "SCRIPT_MAX_PROCESSES": "0"}))
	if err != nil || !s.RunAs || s.RunAsUID != 10002 || s.RunAsGID != 10002 || s.EgressAllow != "10.0.0.0/8" || s.EgressProxy ||
		s.Containment != "session" || s.MaxProcesses != 0 {
		t.Fatalf("set: %+v %v", s, err)
	}
	if s, _ = LoadSecurity(env(map[string]string{"SCRIPT_RUN_AS": "10002:65534"})); s.RunAsGID != 65534 {
		t.Fatalf("uid:gid: %+v", s)
	}
	_, err = LoadSecurity(env(map[string]string{"SCRIPT_RUN_AS": "nobody", "SCRIPT_CONTAINMENT": "vm"}))
	if err == nil || !strings.Contains(err.Error(), "SCRIPT_RUN_AS") || !strings.Contains(err.Error(), "SCRIPT_CONTAINMENT") {
		t.Fatalf("errors: %v", err)
	}
	if _, err = LoadSecurity(env(map[string]string{"SCRIPT_RUN_AS": "0"})); err == nil {
		t.Fatal("root accepted as the scripts' user")
	}
}
