package config

import (
	"net/url"
	"path/filepath"
	"strings"
	"time"

	sharedconfig "github.com/scrapeplatform/platform/shared/config"
)

// repositoryTypes are SCRIPT_REPOSITORY_TYPE's values.
var repositoryTypes = []string{"local", "s3", "git", "http"}

// ScriptSource configures the remote script repositories (s3, git, http) and their cache. Config embeds
// it; the worker's README documents each variable.
type ScriptSource struct {
	// RepositoryRef and RepositorySubdir: the git type's ref and the folder holding the scripts.
	RepositoryRef    string
	RepositorySubdir string
	S3               S3
	// ScriptCacheDir holds fetched scripts; ScriptCacheTTL is how long one is served before the remote is
	// asked again; ScriptFetchTimeout bounds one refresh.
	ScriptCacheDir     string
	ScriptCacheTTL     time.Duration
	ScriptFetchTimeout time.Duration
	// ScriptMaxBytes and ScriptMaxFiles bound a script bundle.
	ScriptMaxBytes int64
	ScriptMaxFiles int
}

// S3 locates the S3 repository. Without keys the AWS SDK's default credential chain is used.
type S3 struct {
	Bucket    string
	Region    string
	AccessKey string
	SecretKey string
	Prefix    string
	Endpoint  string
}

// loadScripts reads the ScriptSource variables into c; c.RepositoryType and c.WorkDir are set.
func loadScripts(e *sharedconfig.Env, c *Config) {
	c.ScriptSource = ScriptSource{
		RepositoryRef:    e.String("SCRIPT_REPOSITORY_REF", "HEAD"),
		RepositorySubdir: e.String("SCRIPT_REPOSITORY_SUBDIR", ""),
		S3: S3{
			Bucket:    e.String("S3_BUCKET_NAME", ""),
			Region:    e.String("S3_REGION", ""),
			AccessKey: e.String("S3_ACCESS_KEY", ""),
			SecretKey: e.String("S3_SECRET_KEY", ""),
			Prefix:    e.String("S3_PREFIX", "scripts/"),
			Endpoint:  e.String("S3_ENDPOINT_URL", ""),
		},
		// Per worker: workers that share a WORKER_WORK_DIR (make run, the e2e suite) must not share a cache.
		ScriptCacheDir:     e.String("SCRIPT_CACHE_DIR", filepath.Join(c.WorkDir, "scripts", c.WorkerID)),
		ScriptCacheTTL:     e.Duration("SCRIPT_CACHE_TTL", 30*time.Second, 0, 24*time.Hour),
		ScriptFetchTimeout: e.Duration("SCRIPT_FETCH_TIMEOUT", time.Minute, time.Second, 30*time.Minute),
		ScriptMaxBytes:     int64(e.Int("SCRIPT_MAX_SIZE_MB", 64, 1, 4096)) << 20,
		ScriptMaxFiles:     e.Int("SCRIPT_MAX_FILES", 1000, 1, 100_000),
	}
	switch c.RepositoryType {
	case "s3":
		if c.S3.Bucket == "" {
			e.Fail("S3_BUCKET_NAME is required when SCRIPT_REPOSITORY_TYPE=s3")
		}
		if (c.S3.AccessKey == "") != (c.S3.SecretKey == "") {
			e.Fail("S3_ACCESS_KEY and S3_SECRET_KEY: set both, or neither to use the AWS default credential chain")
		}
		if c.S3.Endpoint != "" && !httpURL(c.S3.Endpoint) {
			e.Fail("S3_ENDPOINT_URL=%q: must be an http:// or https:// URL", c.S3.Endpoint)
		}
	case "git":
		if c.RepositoryURL == "" {
			e.Fail("SCRIPT_REPOSITORY_URL (the git repository) is required when SCRIPT_REPOSITORY_TYPE=git")
		}
		if strings.HasPrefix(c.RepositoryRef, "-") || strings.ContainsAny(c.RepositoryRef, " \t:^~?*[\\") {
			e.Fail("SCRIPT_REPOSITORY_REF=%q: not a branch, tag or commit", c.RepositoryRef)
		}
	case "http":
		if !httpURL(c.RepositoryURL) {
			e.Fail("SCRIPT_REPOSITORY_URL=%q: an http:// or https:// base URL is required when SCRIPT_REPOSITORY_TYPE=http", c.RepositoryURL)
		}
	}
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}
