package platform

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/jsii-runtime-go"
)

// ScriptsPrefix is S3_PREFIX: the workers find script NAME in the object <prefix>NAME.tar.gz (a bundle
// scrapectl publishes).
const ScriptsPrefix = "scripts/"

type scriptsBucket struct {
	bucket awss3.Bucket
	// logs holds the server access logs (of the results bucket too).
	logs awss3.Bucket
}

func newScriptsBucket(st awscdk.Stack) *scriptsBucket {
	logs := awss3.NewBucket(st, jsii.String("AccessLogsBucket"), &awss3.BucketProps{
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:        jsii.Bool(true),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		LifecycleRules:    &[]*awss3.LifecycleRule{{Expiration: awscdk.Duration_Days(jsii.Number(365))}},
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
	})

	// Versioned, so every published script version stays recoverable (README: backup and recovery); old
	// versions expire after a year.
	b := awss3.NewBucket(st, jsii.String("ScriptsBucket"), &awss3.BucketProps{
		Versioned:              jsii.Bool(true),
		Encryption:             awss3.BucketEncryption_S3_MANAGED,
		BlockPublicAccess:      awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:             jsii.Bool(true),
		ObjectOwnership:        awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		ServerAccessLogsBucket: logs,
		ServerAccessLogsPrefix: jsii.String("scripts-bucket/"),
		LifecycleRules: &[]*awss3.LifecycleRule{{
			NoncurrentVersionExpiration:         awscdk.Duration_Days(jsii.Number(365)),
			AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(7)),
		}},
		// Kept on stack deletion in every stage: CloudFormation cannot delete a bucket that holds objects, and
		// the scripts' version history is the backup (README: backup and recovery).
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	return &scriptsBucket{bucket: b, logs: logs}
}
