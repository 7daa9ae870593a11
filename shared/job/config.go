package job

import (
	"time"

	"github.com/scrapeplatform/platform/shared/config"
	"github.com/scrapeplatform/platform/shared/s3client"
)

// Config locates the job store. Load reads it from these variables:
//
//	variable            default  meaning
//	JOB_STORE_BUCKET    (none)   bucket of the job store (required); in AWS the stack's results bucket
//	JOB_STORE_PREFIX    ""       prefix of every key; the store writes <prefix>jobs/, <prefix>results/
//	                             and <prefix>idempotency/ under it
//	JOB_RETENTION       168h     how long a job stays readable (1h to 8760h); in AWS a lifecycle rule on
//	                             jobs/ and results/ deletes the objects after as many whole days
//	JOB_RESULT_URL_TTL  15m      lifetime of a presigned result URL (1m to 12h)
//	S3_ENDPOINT_URL     (none)   an S3-compatible server (versitygw locally); path-style addressing
//	S3_REGION           (SDK)    region; us-east-1 with an endpoint
//	S3_ACCESS_KEY       (none)   static credentials, with S3_SECRET_KEY; otherwise the SDK's chain
//	S3_SECRET_KEY       (none)
type Config struct {
	Bucket       string
	Prefix       string
	Retention    time.Duration
	ResultURLTTL time.Duration
	Endpoint     string
	Region       string
	AccessKey    string
	SecretKey    string
}

// The defaults of Config.
const (
	DefaultRetention    = 7 * 24 * time.Hour
	DefaultResultURLTTL = 15 * time.Minute
)

// Load reads Config from getenv, reporting every problem at once.
func Load(getenv func(string) string) (Config, error) {
	e := config.NewEnv(getenv)
	c := Config{
		Bucket:       e.String("JOB_STORE_BUCKET", ""),
		Prefix:       s3client.NormalizePrefix(e.String("JOB_STORE_PREFIX", "")),
		Retention:    e.Duration("JOB_RETENTION", DefaultRetention, time.Hour, 365*24*time.Hour),
		ResultURLTTL: e.Duration("JOB_RESULT_URL_TTL", DefaultResultURLTTL, time.Minute, 12*time.Hour),
		Endpoint:     e.String("S3_ENDPOINT_URL", ""),
		Region:       e.String("S3_REGION", ""),
		AccessKey:    e.String("S3_ACCESS_KEY", ""),
		SecretKey:    e.String("S3_SECRET_KEY", ""),
	}
	if c.Bucket == "" {
		e.Fail("JOB_STORE_BUCKET: required (the bucket that keeps jobs and large results)")
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		e.Fail("S3_ACCESS_KEY and S3_SECRET_KEY: set both or neither")
	}
	return c, e.Err()
}

// RetentionDays is the retention in whole days, rounded up: the expiration of the bucket's lifecycle rule.
func (c Config) RetentionDays() int {
	return int((c.Retention + 24*time.Hour - 1) / (24 * time.Hour))
}
