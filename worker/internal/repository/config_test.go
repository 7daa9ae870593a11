package repository

import (
	"strings"
	"testing"
	"time"

	"github.com/scrapeplatform/platform/shared/config"
)

func loadOptions(env map[string]string) (Options, error) {
	e := config.NewEnv(func(k string) string { return env[k] })
	o := LoadOptions(e, "/w", "w1")
	return o, e.Err()
}

// The cases of the former worker/internal/config's scripts_test.go and of its repository defaults.
func TestLoadOptionsDefaults(t *testing.T) {
	t.Parallel()
	o, err := loadOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := o.Cache
	if o.Type != TypeLocal || o.URL != "./scripts" || c.Dir != "/w/scripts/w1" || c.TTL != 30*time.Second ||
		c.FetchTimeout != time.Minute || c.Limits != DefaultLimits || o.S3.Prefix != "scripts/" || o.Git.Ref != "HEAD" {
		t.Fatalf("defaults: %+v", o)
	}
}

func TestLoadOptionsRemoteRepositories(t *testing.T) {
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
		"unknown type":    {env: map[string]string{"SCRIPT_REPOSITORY_TYPE": "ftp"}, problem: []string{"SCRIPT_REPOSITORY_TYPE"}},
		"cache limits": {env: map[string]string{"SCRIPT_CACHE_TTL": "-1s", "SCRIPT_FETCH_TIMEOUT": "0", "SCRIPT_MAX_SIZE_MB": "0", "SCRIPT_MAX_FILES": "x"},
			problem: []string{"SCRIPT_CACHE_TTL", "SCRIPT_FETCH_TIMEOUT", "SCRIPT_MAX_SIZE_MB", "SCRIPT_MAX_FILES"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o, err := loadOptions(tc.env)
			if len(tc.problem) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if o.Type != tc.env["SCRIPT_REPOSITORY_TYPE"] {
					t.Fatalf("type %q", o.Type)
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
