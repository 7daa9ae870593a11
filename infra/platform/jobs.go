package platform

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/scrapeplatform/platform/infra/stage"
)

// The job store's key prefixes (shared/job, doc.go): the gateway and the workers set JOB_STORE_BUCKET and
// no JOB_STORE_PREFIX, so the store writes these at the bucket's root.
const (
	JobsPrefix        = "jobs/"
	ResultsPrefix     = "results/"
	IdempotencyPrefix = "idempotency/"
	// IdempotencyDays is how long an Idempotency-Key is remembered: the API promises 24 h; the rule
	// deletes whole days, so a claim lives one to two days.
	IdempotencyDays = 2
)

type resultsBucket struct {
	bucket awss3.Bucket
}

// newResultsBucket creates the job store of the stage: job state (jobs/), claim-checked results
// (results/) and idempotency claims (idempotency/). Encrypted, private, TLS only, unversioned (every
// object is written once or rewritten by its only writer, and the store's conditional writes need no
// history), with lifecycle rules that delete jobs and results after the job retention and claims after
// IdempotencyDays. Server access logs go to the scripts' access-log bucket.
func newResultsBucket(st awscdk.Stack, s stage.Settings, accessLogs awss3.IBucket) *resultsBucket {
	retention := awscdk.Duration_Days(jsii.Number(s.API.JobRetention()))
	b := awss3.NewBucket(st, jsii.String("ResultsBucket"), &awss3.BucketProps{
		Versioned:              jsii.Bool(false),
		Encryption:             awss3.BucketEncryption_S3_MANAGED,
		BlockPublicAccess:      awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:             jsii.Bool(true),
		ObjectOwnership:        awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		ServerAccessLogsBucket: accessLogs,
		ServerAccessLogsPrefix: jsii.String("results-bucket/"),
		LifecycleRules: &[]*awss3.LifecycleRule{
			{Id: jsii.String("jobs"), Prefix: jsii.String(JobsPrefix), Expiration: retention},
			{Id: jsii.String("results"), Prefix: jsii.String(ResultsPrefix), Expiration: retention},
			{Id: jsii.String("idempotency"), Prefix: jsii.String(IdempotencyPrefix), Expiration: awscdk.Duration_Days(jsii.Number(IdempotencyDays))},
			{Id: jsii.String("multipart"), AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(1))},
		},
		// Job state is disposable, but CloudFormation cannot delete a bucket that holds objects: where the
		// stage does not retain data, empty it before deleting the stack (infra/README.md).
		RemovalPolicy: removalPolicy(s),
	})
	return &resultsBucket{bucket: b}
}

// grant gives role exactly GetObject on the get prefixes and PutObject on the put prefixes, plus
// s3:ListBucket on the bucket (so a missing job reads as 404 NoSuchKey: S3 answers 403 for a missing key
// to a caller who may not list), and the bucket policy denies the role every delete: objects leave by the
// lifecycle rules only. sid names the statements.
func (r *resultsBucket) grant(role awsiam.IRole, sid string, get, put []string) {
	objects := func(prefixes []string) *[]*string {
		var arns []*string
		for _, p := range prefixes {
			arns = append(arns, r.bucket.ArnForObjects(jsii.String(p+"*")))
		}
		return &arns
	}
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: jsii.String(sid + "Get"), Actions: jsii.Strings("s3:GetObject"), Resources: objects(get),
	}))
	if len(put) > 0 {
		role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String(sid + "Put"), Actions: jsii.Strings("s3:PutObject"), Resources: objects(put),
		}))
	}
	role.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: jsii.String(sid + "List"), Actions: jsii.Strings("s3:ListBucket"), Resources: &[]*string{r.bucket.BucketArn()},
	}))
	r.bucket.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String(sid + "NoDelete"),
		Effect:     awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewArnPrincipal(role.RoleArn())},
		Actions:    jsii.Strings("s3:DeleteObject*", "s3:PutBucket*", "s3:DeleteBucket*", "s3:PutLifecycleConfiguration"),
		Resources:  jsii.Strings(*r.bucket.BucketArn(), *r.bucket.ArnForObjects(jsii.String("*"))),
	}))
}

// WebhookSecretLength is the generated webhook secret's length: 48 letters and digits are valid base64
// (the Standard Webhooks secret is whsec_ + base64), 36 bytes of key (shared/webhook accepts 24 to 64).
const WebhookSecretLength = 48

// newWebhookSecret creates the deployment's webhook signing secret. Only the workers get it (ECS injects
// it as WEBHOOK_SECRET); a receiver is given "whsec_" + its value (infra/README.md: webhooks).
func newWebhookSecret(st awscdk.Stack, s stage.Settings) awssecretsmanager.Secret {
	secret := awssecretsmanager.NewSecret(st, jsii.String("WebhookSecret"), &awssecretsmanager.SecretProps{
		Description: jsii.String("Webhook signing key of scraping-" + s.Name + " (base64; receivers verify with whsec_ + this value)"),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			PasswordLength:     jsii.Number(WebhookSecretLength),
			ExcludePunctuation: jsii.Bool(true),
			IncludeSpace:       jsii.Bool(false),
		},
		RemovalPolicy: removalPolicy(s),
	})
	cdknag.NagSuppressions_AddResourceSuppressions(secret, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-SMG4"),
		Reason: jsii.String("Every receiver holds a copy of the webhook key, so a rotation must be coordinated with them: put the new " +
			"key first in the secret's value (WEBHOOK_SECRET takes a list; all are sent during a rotation), hand it out, then drop " +
			"the old one (README.md: webhooks). An automatic rotation would break every receiver at once."),
	}}, jsii.Bool(false))
	return secret
}
