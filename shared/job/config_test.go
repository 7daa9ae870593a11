package job

import (
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for _, s := range kv {
			k, v, _ := strings.Cut(s, "=")
			m[k] = v
		}
		return func(k string) string { return m[k] }
	}
	c, err := Load(env("JOB_STORE_BUCKET=b"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Bucket != "b" || c.Prefix != "" || c.Retention != 7*24*time.Hour || c.ResultURLTTL != 15*time.Minute || c.RetentionDays() != 7 {
		t.Errorf("defaults: %+v (retention days %d)", c, c.RetentionDays())
	}
	c, err = Load(env("JOB_STORE_BUCKET=b", "JOB_STORE_PREFIX=/x", "JOB_RETENTION=36h", "JOB_RESULT_URL_TTL=5m",
		"S3_ENDPOINT_URL=http://127.0.0.1:9000", "S3_REGION=eu-west-1", "S3_ACCESS_KEY=a", "S3_SECRET_KEY=s"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Prefix != "x/" || c.Retention != 36*time.Hour || c.RetentionDays() != 2 || c.ResultURLTTL != 5*time.Minute ||
		c.Endpoint != "http://127.0.0.1:9000" || c.Region != "eu-west-1" || c.AccessKey != "a" || c.SecretKey != "s" {
		t.Errorf("set: %+v", c)
	}
	_, err = Load(env("JOB_RETENTION=10m", "JOB_RESULT_URL_TTL=48h", "S3_ACCESS_KEY=a"))
	for _, want := range []string{"JOB_STORE_BUCKET", "JOB_RETENTION", "JOB_RESULT_URL_TTL", "S3_SECRET_KEY"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load with four problems: %v; want it to name %s", err, want)
		}
	}
}
