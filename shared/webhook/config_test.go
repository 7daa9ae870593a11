package webhook

import (
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := LoadConfig(env(nil))
	if err != nil || len(c.Secrets) != 0 || c.Schedule.Total != 24*time.Hour {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	other := newSecret(t)
	c, err = LoadConfig(env(map[string]string{
		"WEBHOOK_SECRETS":     vectorSecret + ", " + other.Encode(),
		"WEBHOOK_RETRY_TOTAL": "2h",
	}))
	if err != nil || len(c.Secrets) != 2 || c.Secrets[0].Encode() != vectorSecret || c.Secrets[1].Encode() != other.Encode() || c.Schedule.Total != 2*time.Hour {
		t.Fatalf("set: %+v, %v", c, err)
	}
	if err := c.Schedule.Validate(); err != nil {
		t.Fatal(err)
	}
	_, err = LoadConfig(env(map[string]string{"WEBHOOK_SECRETS": "whsec_short", "WEBHOOK_RETRY_TOTAL": "100h"}))
	for _, want := range []string{"WEBHOOK_SECRETS", "WEBHOOK_RETRY_TOTAL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadConfig with two problems: %v; want it to name %s", err, want)
		}
	}
	if _, err := ParseSecrets(" , "); err == nil {
		t.Error("ParseSecrets of an empty list succeeded")
	}
}
