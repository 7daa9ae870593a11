package gateway

import (
	"strings"
	"testing"
	"time"
)

func TestLoadConfigJobs(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	c, err := LoadConfig(env())
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxTimeout != 900*time.Second || c.SyncWait != 25*time.Second || c.QueueWait != 10*time.Minute ||
		c.InlineResultBytes != 5<<20 || !c.StatusPublic || c.JobStore != nil {
		t.Fatalf("defaults: %+v", c)
	}
	c, err = LoadConfig(env("SCRAPE_MAX_TIMEOUT", "3600", "SCRAPE_SYNC_WAIT", "10s", "JOB_QUEUE_WAIT", "0", "GATEWAY_INLINE_RESULT_MB", "1",
		"STATUS_PUBLIC", "false", "JOB_STORE_BUCKET", "jobs", "JOB_STORE_PREFIX", "stage", "EGRESS_ALLOW", "10.1.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MaxTimeout != time.Hour || c.SyncWait != 10*time.Second || c.QueueWait != 0 || c.InlineResultBytes != 1<<20 || c.StatusPublic ||
		c.JobStore == nil || c.JobStore.Bucket != "jobs" || c.JobStore.Prefix != "stage/" || c.Egress.String() != "10.1.0.0/16" {
		t.Fatalf("set: %+v %+v", c, c.JobStore)
	}
	for name, e := range map[string]func(string) string{
		"SCRAPE_MAX_TIMEOUT":       env("SCRAPE_MAX_TIMEOUT", "3601"),
		"SCRAPE_SYNC_WAIT":         env("SCRAPE_SYNC_WAIT", "0"),
		"GATEWAY_INLINE_RESULT_MB": env("GATEWAY_INLINE_RESULT_MB", "101"),
		"EGRESS_ALLOW":             env("EGRESS_ALLOW", "bad/range/x"),
		"S3_ACCESS_KEY":            env("JOB_STORE_BUCKET", "jobs", "S3_ACCESS_KEY", "k"),
	} {
		if _, err := LoadConfig(e); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: want an error naming it, got %v", name, err)
		}
	}
}
