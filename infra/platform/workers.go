package platform

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecrassets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/scrapeplatform/platform/infra/stage"
)

// WorkerImageExclude keeps the worker image's build context to what worker/Dockerfile copies (the
// shared module and the worker's sources, without tests or stray build output): Docker ignore-file
// syntax, applied to the repository root. It also keeps the asset hash, and so image rebuilds,
// independent of unrelated changes.
var WorkerImageExclude = []string{
	"*",
	"!shared",
	"!worker",
	"worker/*",
	"!worker/go.mod",
	"!worker/go.sum",
	"!worker/cmd",
	"!worker/internal",
	"!worker/Dockerfile",
	"!worker/docker-entrypoint.sh",
	"**/*_test.go",
	"**/testdata",
	"**/__pycache__",
}

// WebhookSecretVariable is the workers' variable holding the webhook signing secrets (shared/webhook).
const WebhookSecretVariable = "WEBHOOK_SECRET"

// ScrapeOutcomeMetric counts the worker's "task done" log lines by status (a CloudWatch Logs metric
// filter, so the dashboard shows scrape outcomes without waiting for the Prometheus side).
const ScrapeOutcomeMetric = "ScrapeOutcomes"

// scrapeOutcomeNamespace holds the log-derived scrape outcomes; a metric filter's dimensions can only come
// from the log line, so the stage goes into the namespace.
func scrapeOutcomeNamespace(s stage.Settings) string { return MetricNamespace + "/" + s.Name }

type workers struct {
	cluster   awsecs.Cluster
	service   awsecs.FargateService
	taskRole  awsiam.IRole
	logGroup  awslogs.LogGroup
	sg        awsec2.SecurityGroup
	container awsecs.ContainerDefinition
}

func newWorkers(st awscdk.Stack, s stage.Settings, net *network, brk *broker, scripts *scriptsBucket, results *resultsBucket,
	webhookSecret awssecretsmanager.ISecret, prom *prometheus, art Artifacts) *workers {
	w := s.Workers
	cluster := awsecs.NewCluster(st, jsii.String("Cluster"), &awsecs.ClusterProps{
		Vpc:                            net.vpc,
		EnableFargateCapacityProviders: jsii.Bool(true),
		ContainerInsightsV2:            awsecs.ContainerInsights_ENABLED,
	})

	task := awsecs.NewFargateTaskDefinition(st, jsii.String("WorkerTask"), &awsecs.FargateTaskDefinitionProps{
		Family:         jsii.String("scraping-worker-" + s.Name),
		Cpu:            jsii.Number(w.CPU),
		MemoryLimitMiB: jsii.Number(w.MemoryMiB),
		// x86_64: FARGATE_SPOT runs x86_64 only.
		RuntimePlatform: &awsecs.RuntimePlatform{
			CpuArchitecture:       awsecs.CpuArchitecture_X86_64(),
			OperatingSystemFamily: awsecs.OperatingSystemFamily_LINUX(),
		},
	})

	// Scripts: the workers may read the scripts prefix and nothing else, and the bucket policy refuses
	// them every write even if a broader grant were ever added to the role.
	scripts.bucket.GrantRead(task.TaskRole(), jsii.String(ScriptsPrefix+"*"))
	scripts.bucket.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("WorkersReadOnly"),
		Effect:     awsiam.Effect_DENY,
		Principals: &[]awsiam.IPrincipal{awsiam.NewArnPrincipal(task.TaskRole().RoleArn())},
		Actions:    jsii.Strings("s3:PutObject*", "s3:DeleteObject*", "s3:RestoreObject", "s3:PutBucket*", "s3:DeleteBucket*", "s3:PutLifecycleConfiguration", "s3:PutReplicationConfiguration"),
		Resources:  jsii.Strings(*scripts.bucket.BucketArn(), *scripts.bucket.ArnForObjects(jsii.String("*"))),
	}))
	// Jobs: the workers record running and final job state (jobs/) and write claim-checked results
	// (results/); they read both back (the lease and cancel checks, the webhook's job body). No idempotency
	// claims, no deletes.
	results.grant(task.TaskRole(), "WorkersJobStore", []string{JobsPrefix, ResultsPrefix}, []string{JobsPrefix, ResultsPrefix})
	// Metrics: the ADOT sidecar remote-writes to this stage's Prometheus workspace.
	task.TaskRole().AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("RemoteWriteMetrics"),
		Actions:   jsii.Strings("aps:RemoteWrite"),
		Resources: jsii.Strings(*prom.workspace.AttrArn()),
	}))

	logs := logGroup(st, "WorkerLogs", s)
	image := awsecs.ContainerImage_FromAsset(jsii.String(art.RepoRoot), &awsecs.AssetImageProps{
		File:       jsii.String(WorkerDockerfile),
		Platform:   awsecrassets.Platform_LINUX_AMD64(),
		IgnoreMode: awscdk.IgnoreMode_DOCKER,
		Exclude:    jsii.Strings(WorkerImageExclude...),
	})
	healthz := fmt.Sprintf("import urllib.request; urllib.request.urlopen('http://127.0.0.1:%d/healthz', timeout=4)", WorkerMetricsPort)
	env := map[string]*string{
		// The entrypoint builds RABBITMQ_URL from the endpoint and the injected credentials.
		"RABBITMQ_ENDPOINT":      brk.amqpEndpoint,
		"RABBITMQ_TASK_QUEUE":    jsii.String(TaskQueue),
		"WORKER_CONCURRENCY":     jsii.String(fmt.Sprint(w.Concurrency)),
		"WORKER_METRICS_ADDR":    jsii.String(fmt.Sprintf(":%d", WorkerMetricsPort)),
		"WORKER_DRAIN_TIMEOUT":   jsii.String(fmt.Sprintf("%ds", w.DrainTimeoutSeconds)),
		"SCRIPT_MEMORY_LIMIT_MB": jsii.String(fmt.Sprint(w.ScriptMemoryLimitMiB)),
		"SCRIPT_REPOSITORY_TYPE": jsii.String("s3"),
		"S3_BUCKET_NAME":         scripts.bucket.BucketName(),
		"S3_REGION":              jsii.String(s.Region),
		"S3_PREFIX":              jsii.String(ScriptsPrefix),
		"JOB_STORE_BUCKET":       results.bucket.BucketName(),
		"JOB_RETENTION":          jsii.String(fmt.Sprintf("%dh", 24*s.API.JobRetention())),
		"LOG_LEVEL":              jsii.String("info"),
		// Each script runs as a uid of its own (picked from its name), so scripts cannot signal the worker,
		// read its files or each other's, and their process limit is their own (worker/README.md#security).
		"SCRIPT_UID_RANGE": jsii.String(ScriptUIDRange),
	}
	container := task.AddContainer(jsii.String("worker"), &awsecs.ContainerDefinitionOptions{
		Image: image,
		// Root in the container, for the per-script uids (CAP_SETUID/CAP_SETGID, which Fargate grants);
		// Fargate grants no CAP_SYS_ADMIN, so no namespaces: the session containment. The image's own user
		// (10001) runs scripts as itself, which test/docker shows is weaker (TestWorkerAsFargateRunsIt vs
		// TestRootWorkerAsFargateRunsIt); each Fargate task is a VM of its own.
		User:        jsii.String("0"),
		Essential:   jsii.Bool(true),
		Environment: &env,
		Secrets: &map[string]awsecs.Secret{
			"RABBITMQ_USERNAME": awsecs.Secret_FromSecretsManager(brk.users.worker, jsii.String("username")),
			"RABBITMQ_PASSWORD": awsecs.Secret_FromSecretsManager(brk.users.worker, jsii.String("password")),
			// Signs webhook deliveries; the workers are the only senders.
			WebhookSecretVariable: awsecs.Secret_FromSecretsManager(webhookSecret, nil),
		},
		Logging: awsecs.LogDriver_AwsLogs(&awsecs.AwsLogDriverProps{
			StreamPrefix: jsii.String("worker"),
			LogGroup:     logs,
			// A slow CloudWatch Logs must never block the worker's stderr (and with it the worker).
			Mode:          awsecs.AwsLogDriverMode_NON_BLOCKING,
			MaxBufferSize: awscdk.Size_Mebibytes(jsii.Number(25)),
		}),
		// SIGTERM → the worker drains for WORKER_DRAIN_TIMEOUT; ECS waits StopGraceSeconds longer before
		// SIGKILL, so unfinished tasks are requeued and connections closed cleanly.
		StopTimeout: awscdk.Duration_Seconds(jsii.Number(w.StopTimeoutSeconds())),
		HealthCheck: &awsecs.HealthCheck{
			Command:     jsii.Strings("CMD", "python3", "-c", healthz),
			Interval:    awscdk.Duration_Seconds(jsii.Number(15)),
			Timeout:     awscdk.Duration_Seconds(jsii.Number(5)),
			Retries:     jsii.Number(3),
			StartPeriod: awscdk.Duration_Seconds(jsii.Number(30)),
		},
		// An init process reaps whatever a script leaves behind.
		LinuxParameters: awsecs.NewLinuxParameters(st, jsii.String("WorkerLinuxParameters"), &awsecs.LinuxParametersProps{InitProcessEnabled: jsii.Bool(true)}),
	})
	endpoint := fmt.Sprintf("%sapi/v1/remote_write", *prom.workspace.AttrPrometheusEndpoint())
	task.AddContainer(jsii.String("adot-collector"), &awsecs.ContainerDefinitionOptions{
		Image: awsecs.ContainerImage_FromRegistry(jsii.String(s.Observability.ADOTImage), nil),
		// Losing metrics must not stop scraping.
		Essential:            jsii.Bool(false),
		Cpu:                  jsii.Number(64),
		MemoryReservationMiB: jsii.Number(128),
		Command:              jsii.Strings("--config=env:AOT_CONFIG_CONTENT"),
		Environment:          &map[string]*string{"AOT_CONFIG_CONTENT": jsii.String(adotConfig(s.Region, endpoint))},
		Logging: awsecs.LogDriver_AwsLogs(&awsecs.AwsLogDriverProps{
			StreamPrefix: jsii.String("adot"),
			LogGroup:     logs,
			Mode:         awsecs.AwsLogDriverMode_NON_BLOCKING,
		}),
		HealthCheck: &awsecs.HealthCheck{
			Command:     jsii.Strings("CMD", "/healthcheck"),
			Interval:    awscdk.Duration_Seconds(jsii.Number(30)),
			Timeout:     awscdk.Duration_Seconds(jsii.Number(5)),
			Retries:     jsii.Number(3),
			StartPeriod: awscdk.Duration_Seconds(jsii.Number(15)),
		},
	})
	suppress(task, finding("AwsSolutions-ECS2",
		"The environment holds only non-secret settings (queue name, broker endpoint without credentials, bucket name, limits, the "+
			"collector's configuration); the broker credentials come from Secrets Manager through the task definition's secrets."))
	suppress(task.ExecutionRole(), finding("AwsSolutions-IAM5",
		"CDK's grant for pulling the image asset: ecr:GetAuthorizationToken has no resource-level permissions (the pull itself "+
			"is limited to the asset repository).",
		"Resource::*"))
	suppress(task.TaskRole(), finding("AwsSolutions-IAM5",
		"Read-only access to the scripts prefix of the scripts bucket: the object names are the script files, unknown at deploy time "+
			"(s3:GetObject*, s3:List* on scripts/*). The job store: objects named by request id, unknown at deploy time "+
			"(s3:GetObject and s3:PutObject on jobs/* and results/* of the results bucket).",
		"Action::s3:GetBucket*", "Action::s3:GetObject*", "Action::s3:List*", matching(`/^Resource::<ScriptsBucket[0-9A-F]+\.Arn>\/scripts\/\*$/`),
		matching(`/^Resource::<ResultsBucket[0-9A-F]+\.Arn>\/(jobs|results)\/\*$/`)))

	sg := securityGroup(st, "WorkerSecurityGroup", "worker tasks: outbound only (the broker, AWS endpoints, and the web pages scripts fetch)", net.vpc, true)
	brk.allowAMQPS(sg, "the workers")

	strategies := []*awsecs.CapacityProviderStrategy{
		{CapacityProvider: jsii.String("FARGATE"), Base: jsii.Number(w.OnDemandBase), Weight: jsii.Number(w.OnDemandWeight)},
		{CapacityProvider: jsii.String("FARGATE_SPOT"), Weight: jsii.Number(w.SpotWeight)},
	}
	service := awsecs.NewFargateService(st, jsii.String("WorkerService"), &awsecs.FargateServiceProps{
		Cluster:                    cluster,
		TaskDefinition:             task,
		CapacityProviderStrategies: &strategies,
		VpcSubnets:                 net.workers,
		SecurityGroups:             &[]awsec2.ISecurityGroup{sg},
		AssignPublicIp:             jsii.Bool(net.workersPublicIP),
		// The first deployment starts minTasks; afterwards autoscaling owns the count (CloudFormation does
		// not reset it on updates because DesiredCount stays the same value).
		DesiredCount:         jsii.Number(w.MinTasks),
		MinHealthyPercent:    jsii.Number(100),
		MaxHealthyPercent:    jsii.Number(200),
		CircuitBreaker:       &awsecs.DeploymentCircuitBreaker{Enable: jsii.Bool(true), Rollback: jsii.Bool(true)},
		PropagateTags:        awsecs.PropagatedTagSource_SERVICE,
		EnableECSManagedTags: jsii.Bool(true),
		PlatformVersion:      awsecs.FargatePlatformVersion_LATEST,
	})

	// The service must not be created before the cluster's capacity-provider association: CloudFormation
	// would otherwise race them and can fail with "The specified capacity provider strategy cannot contain
	// a capacity provider that is not associated with the cluster". The CDK creates the association in an
	// aspect during synthesis, so the dependency is added by an aspect that runs after it.
	awscdk.Aspects_Of(cluster).Add(&capacityProviderDependency{service: service}, &awscdk.AspectOptions{Priority: awscdk.AspectPriority_DEFAULT()})
	// The workers' broker user exists before the first task starts.
	service.Node().AddDependency(brk.users.resource)

	// Scrape outcomes from the worker's JSON log line {"msg":"task done","status":…}.
	awslogs.NewMetricFilter(st, jsii.String("ScrapeOutcomesFilter"), &awslogs.MetricFilterProps{
		LogGroup:        logs,
		FilterPattern:   awslogs.FilterPattern_StringValue(jsii.String("$.msg"), jsii.String("="), jsii.String("task done")),
		MetricNamespace: jsii.String(scrapeOutcomeNamespace(s)),
		MetricName:      jsii.String(ScrapeOutcomeMetric),
		MetricValue:     jsii.String("1"),
		Dimensions:      &map[string]*string{"Status": jsii.String("$.status")},
		Unit:            awscloudwatch.Unit_COUNT,
	})
	return &workers{cluster: cluster, service: service, taskRole: task.TaskRole(), logGroup: logs, sg: sg, container: container}
}

// capacityProviderDependency makes service depend on the capacity-provider association of the cluster it
// visits (the association is the cluster's only child of that CloudFormation type).
type capacityProviderDependency struct {
	service awsecs.FargateService
}

// Visit implements awscdk.IAspect.
func (d *capacityProviderDependency) Visit(node constructs.IConstruct) {
	if !*awscdk.CfnResource_IsCfnResource(node) {
		return
	}
	if res, ok := node.(awscdk.CfnResource); ok && *res.CfnResourceType() == "AWS::ECS::ClusterCapacityProviderAssociations" {
		d.service.Node().AddDependency(node)
	}
}
