package webhook

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	c, err := LoadConfig(env(nil))
	if err != nil || len(c.Secrets) != 0 || c.Schedule.Total != 24*time.Hour || c.Concurrency != DefaultConcurrency || c.Timeout != DefaultTimeout {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	other := newSecret(t)
	c, err = LoadConfig(env(map[string]string{
		"WEBHOOK_SECRET":       vectorSecret + ", " + other.Encode(),
		"WEBHOOK_MAX_AGE":      "2h",
		"WEBHOOK_RETRY_DELAYS": "250ms, 1s,2m",
		"WEBHOOK_CONCURRENCY":  "3",
		"WEBHOOK_TIMEOUT":      "5s",
	}))
	if err != nil || len(c.Secrets) != 2 || c.Secrets[0].Encode() != vectorSecret || c.Secrets[1].Encode() != other.Encode() || c.Schedule.Total != 2*time.Hour ||
		!slices.Equal(c.Schedule.Initial, []time.Duration{250 * time.Millisecond, time.Second, 2 * time.Minute}) || c.Concurrency != 3 || c.Timeout != 5*time.Second {
		t.Fatalf("set: %+v, %v", c, err)
	}
	if err := c.Schedule.Validate(); err != nil {
		t.Fatal(err)
	}
	_, err = LoadConfig(env(map[string]string{"WEBHOOK_SECRET": "whsec_short", "WEBHOOK_MAX_AGE": "100h",
		"WEBHOOK_RETRY_DELAYS": "1s,soon", "WEBHOOK_CONCURRENCY": "0", "WEBHOOK_TIMEOUT": "1h"}))
	for _, want := range []string{"WEBHOOK_SECRET", "WEBHOOK_MAX_AGE", "WEBHOOK_RETRY_DELAYS", "WEBHOOK_CONCURRENCY", "WEBHOOK_TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadConfig with two problems: %v; want it to name %s", err, want)
		}
	}
	if _, err := ParseSecrets(" , "); err == nil {
		t.Error("ParseSecrets of an empty list succeeded")
	}
}

func TestParseDelays(t *testing.T) {
	good := []struct {
		in   string
		want []time.Duration
	}{
		{"1s", []time.Duration{time.Second}},
		{"1s,5s,30s,2m,10m,1h", []time.Duration{time.Second, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, time.Hour}},
		{" 100ms 200ms\t1s ", []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, time.Second}},
		{"1ms,24h", []time.Duration{time.Millisecond, 24 * time.Hour}},
	}
	for _, tt := range good {
		got, err := ParseDelays(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("ParseDelays(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", " , ", "5", "1s,x", "-1s", "0s", "500us", "25h", "1s,,2s,3s,4s,5s,6s,7s,8s,9s,10s,11s,12s,13s,14s,15s,16s,17s,18s,19s,20s,21s", "1e400s"} {
		if got, err := ParseDelays(bad); err == nil {
			t.Errorf("ParseDelays(%q) = %v, want an error", bad, got)
		}
	}
}

// FuzzParseDelays: any input gives either an error or delays within the documented bounds.
func FuzzParseDelays(f *testing.F) {
	for _, seed := range []string{"1s,5s,30s,2m", "100ms 1h", "", "1s,,x", "9223372036854775807ns"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		delays, err := ParseDelays(in)
		if err != nil {
			return
		}
		if len(delays) == 0 || len(delays) > MaxRetryDelays {
			t.Fatalf("ParseDelays(%q) gave %d delays", in, len(delays))
		}
		for _, d := range delays {
			if d < time.Millisecond || d > 24*time.Hour {
				t.Fatalf("ParseDelays(%q) gave %s", in, d)
			}
		}
	})
}
