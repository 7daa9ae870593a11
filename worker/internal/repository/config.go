package repository

import (
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/scrapeplatform/platform/shared/config"
)

// LoadOptions reads the script repository's settings from the environment (worker/README.md,
// "Configuration" and "Script repositories"): SCRIPT_REPOSITORY_TYPE, SCRIPT_REPOSITORY_URL,
// SCRIPT_REPOSITORY_REF, SCRIPT_REPOSITORY_SUBDIR, the S3_* variables, SCRIPT_CACHE_DIR, SCRIPT_CACHE_TTL,
// SCRIPT_FETCH_TIMEOUT, SCRIPT_MAX_SIZE_MB and SCRIPT_MAX_FILES, and checks what the chosen type needs. e
// collects every problem. The cache folder defaults to workDir/scripts/workerID (WORKER_WORK_DIR and
// WORKER_ID): workers that share a work folder (make run, the e2e suite) must not share a cache. Logger and
// Metrics are the caller's to set.
func LoadOptions(e *config.Env, workDir, workerID string) Options {
	o := Options{
		Type: e.OneOf("SCRIPT_REPOSITORY_TYPE", TypeLocal, Types...),
		URL:  e.String("SCRIPT_REPOSITORY_URL", ""),
		Git: GitConfig{
			Ref:    e.String("SCRIPT_REPOSITORY_REF", "HEAD"),
			Subdir: e.String("SCRIPT_REPOSITORY_SUBDIR", ""),
		},
		S3: S3Config{
			Bucket:    e.String("S3_BUCKET_NAME", ""),
			Region:    e.String("S3_REGION", ""),
			AccessKey: e.String("S3_ACCESS_KEY", ""),
			SecretKey: e.String("S3_SECRET_KEY", ""),
			Prefix:    e.String("S3_PREFIX", "scripts/"),
			Endpoint:  e.String("S3_ENDPOINT_URL", ""),
		},
		Cache: CacheOptions{
			Dir:          e.String("SCRIPT_CACHE_DIR", filepath.Join(workDir, "scripts", workerID)),
			TTL:          e.Duration("SCRIPT_CACHE_TTL", 30*time.Second, 0, 24*time.Hour),
			FetchTimeout: e.Duration("SCRIPT_FETCH_TIMEOUT", DefaultFetchTimeout, time.Second, 30*time.Minute),
			Limits: Limits{
				MaxBytes: int64(e.Int("SCRIPT_MAX_SIZE_MB", int(DefaultLimits.MaxBytes>>20), 1, 4096)) << 20,
				MaxFiles: e.Int("SCRIPT_MAX_FILES", DefaultLimits.MaxFiles, 1, 100_000),
			},
		},
	}
	if o.Type == TypeLocal && o.URL == "" {
		o.URL = "./scripts"
	}
	o.check(e)
	return o
}

// check records in e what the chosen type is missing or cannot use.
func (o Options) check(e *config.Env) {
	switch o.Type {
	case TypeS3:
		if o.S3.Bucket == "" {
			e.Fail("S3_BUCKET_NAME is required when SCRIPT_REPOSITORY_TYPE=s3")
		}
		if (o.S3.AccessKey == "") != (o.S3.SecretKey == "") {
			e.Fail("S3_ACCESS_KEY and S3_SECRET_KEY: set both, or neither to use the AWS default credential chain")
		}
		if o.S3.Endpoint != "" && !httpURL(o.S3.Endpoint) {
			e.Fail("S3_ENDPOINT_URL=%q: must be an http:// or https:// URL", o.S3.Endpoint)
		}
	case TypeGit:
		if o.URL == "" {
			e.Fail("SCRIPT_REPOSITORY_URL (the git repository) is required when SCRIPT_REPOSITORY_TYPE=git")
		}
		if ref := o.Git.Ref; strings.HasPrefix(ref, "-") || strings.ContainsAny(ref, " \t:^~?*[\\") {
			e.Fail("SCRIPT_REPOSITORY_REF=%q: not a branch, tag or commit", ref)
		}
	case TypeHTTP:
		if !httpURL(o.URL) {
			e.Fail("SCRIPT_REPOSITORY_URL=%q: an http:// or https:// base URL is required when SCRIPT_REPOSITORY_TYPE=http", o.URL)
		}
	}
}

// httpURL reports whether s is an absolute http:// or https:// URL with a host.
func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
