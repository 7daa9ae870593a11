package config

import (
	"strings"
	"testing"
	"time"
)

func TestLoadScriptSourceDefaults(t *testing.T) {
	t.Parallel()
	c, err := Load(func(k string) string { return map[string]string{"WORKER_WORK_DIR": "/w", "WORKER_ID": "w1"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.ScriptCacheDir != "/w/scripts/w1" || c.ScriptCacheTTL != 30*time.Second || c.ScriptFetchTimeout != time.Minute ||
		c.ScriptMaxBytes != 64<<20 || c.ScriptMaxFiles != 1000 || c.S3.Prefix != "scripts/" || c.RepositoryRef != "HEAD" {
		t.Fatalf("defaults: %+v", c.ScriptSource)
	}
}

func TestLoadRemoteRepositories(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		env     map[string]string
		problem []string // each must be named in the error; none means valid
	}{
		"s3 with keys": {env: map[string]string{"SCRIPT_REPOSITORY_TYPE": "s3", "S3_BUCKET_NAME": "b", "S3_ACCESS_KEY": "a",
			"S3_SECRET_KEY": "s", "S3_ENDPOINT_URL": "http://127.0.0.1:7070"}},
		"s3 default credentials": {env: map[string]string{"SCRIPT_REPOSITORY_TYPE": "s3", "S3_BUCKET_NAME": "b"}},
		"s3 incomplete": {env: map[string]string{"SCRIPT_REPOSITORY_TYPE": "s3", "S3_ACCESS_KEY": "a", "S3_ENDPOINT_URL": "ftp://x"},
			problem: []string{"S3_BUCKET_NAME", "S3_SECRET_KEY", "S3_ENDPOINT_URL"}},
		"git":             {env: map[string]string{"SCRIPT_REPOSITORY_TYPE": "git", "SCRIPT_REPOSITORY_URL": "https://example.com/s.git", "SCRIPT_REPOSITORY_REF": "v1.2"}},
		"git without url": {env: map[string]string{"SCRIPT_REPOSITORY_TYPE": "git", "SCRIPT_REPOSITORY_REF": "--upload-pack=x"}, problem: []string{"SCRIPT_REPOSITORY_URL", "SCRIPT_REPOSITORY_REF"}},
		"http":            {env: map[string]string{"SCRIPT_REPOSITORY_TYPE": "http", "SCRIPT_REPOSITORY_URL": "https://cdn.example.com/scripts/"}},
		"http bad url":    {env: map[string]string{"SCRIPT_REPOSITORY_TYPE": "http", "SCRIPT_REPOSITORY_URL": "/local/path"}, problem: []string{"SCRIPT_REPOSITORY_URL"}},
		"cache limits": {env: map[string]string{"SCRIPT_CACHE_TTL": "-1s", "SCRIPT_FETCH_TIMEOUT": "0", "SCRIPT_MAX_SIZE_MB": "0", "SCRIPT_MAX_FILES": "x"},
			problem: []string{"SCRIPT_CACHE_TTL", "SCRIPT_FETCH_TIMEOUT", "SCRIPT_MAX_SIZE_MB", "SCRIPT_MAX_FILES"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := Load(func(k string) string { return tc.env[k] })
			if len(tc.problem) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if c.RepositoryType != tc.env["SCRIPT_REPOSITORY_TYPE"] {
					t.Fatalf("type %q", c.RepositoryType)
				}
				return
			}
			for _, p := range tc.problem {
				if err == nil || !strings.Contains(err.Error(), p) {
					t.Errorf("error does not name %s: %v", p, err)
				}
			}
		})
	}
}
