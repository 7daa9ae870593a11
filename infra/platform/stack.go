package platform

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/scrapeplatform/platform/infra/stage"
)

// Artifacts are the built things the stack packages, by path.
type Artifacts struct {
	// GatewayCode, QueueDepthCode and BrokerUsersCode are folders holding a `bootstrap` for
	// provided.al2023 on arm64 (make lambda, make lambda-queuedepth, make lambda-brokerusers).
	GatewayCode     string
	QueueDepthCode  string
	BrokerUsersCode string
	// RepoRoot is the worker image's Docker build context; the Dockerfile is worker/Dockerfile in it.
	RepoRoot string
}

// Validate checks that the artifacts exist, so a missing build fails synthesis with a clear message
// instead of packaging an empty folder.
func (a Artifacts) Validate() error {
	for _, dir := range []struct{ name, path, build string }{
		{"gateway Lambda", a.GatewayCode, "make lambda"},
		{"queue-depth Lambda", a.QueueDepthCode, "make lambda-queuedepth"},
		{"BrokerUsers custom resource's Lambda", a.BrokerUsersCode, "make lambda-brokerusers"},
	} {
		fi, err := os.Stat(filepath.Join(dir.path, "bootstrap"))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("the %s needs an executable %s (run %s first)", dir.name, filepath.Join(dir.path, "bootstrap"), dir.build)
		}
	}
	if _, err := os.Stat(filepath.Join(a.RepoRoot, WorkerDockerfile)); err != nil {
		return fmt.Errorf("worker image: %w", err)
	}
	return nil
}

// StackName is the CloudFormation stack of a stage.
func StackName(stageName string) string { return "ScrapingPlatform-" + stageName }

// Names used across the stack.
const (
	// MetricNamespace holds the queue-depth and scrape-outcome metrics.
	MetricNamespace = "ScrapingPlatform"
	// TaskQueue is RABBITMQ_TASK_QUEUE everywhere.
	TaskQueue = "scraping_tasks"
	// DeadLetterQueue is the name shared/broker's topology gives the task queue's dead letters.
	DeadLetterQueue = TaskQueue + ".dead"
	// WorkerDockerfile is the worker's Dockerfile, relative to Artifacts.RepoRoot.
	WorkerDockerfile = "worker/Dockerfile"
	// ScriptUIDRange is the workers' SCRIPT_UID_RANGE: the uids scripts run as (one per script), as make run
	// as root and compose use.
	ScriptUIDRange = "200000-265535"
)

// Platform is the synthesized stage, with handles tests and callers may want.
type Platform struct {
	Stack awscdk.Stack
	// Grafana is the optional Grafana stack (nil unless observability.grafana).
	Grafana  awscdk.Stack
	Settings stage.Settings
}

// New adds the stack of one stage to scope.
func New(scope constructs.Construct, s stage.Settings, art Artifacts) (*Platform, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	if err := art.Validate(); err != nil {
		return nil, err
	}
	// A pinned account makes the CLI refuse credentials of any other; only a stage that says
	// useCallerAccount (stage.Settings.Validate) takes the CLI's.
	account := s.Account
	if account == "" && s.UseCallerAccount {
		account = os.Getenv("CDK_DEFAULT_ACCOUNT")
	}
	var env *awscdk.Environment
	if account != "" {
		env = &awscdk.Environment{Account: jsii.String(account), Region: jsii.String(s.Region)}
	} else {
		env = &awscdk.Environment{Region: jsii.String(s.Region)}
	}
	st := awscdk.NewStack(scope, jsii.String(StackName(s.Name)), &awscdk.StackProps{
		Env:                   env,
		Description:           jsii.String(fmt.Sprintf("Scraping platform, stage %s: API Gateway + Lambda, Amazon MQ for RabbitMQ, Fargate workers", s.Name)),
		TerminationProtection: jsii.Bool(s.TerminationProtection),
	})
	if account != "" {
		// The stage names its AZs: answer the CDK's availability-zone lookup for this account and region with
		// them, so that synthesis needs no AWS call (and no cdk.context.json) in a stack with a pinned account.
		st.Node().SetContext(jsii.String(fmt.Sprintf("availability-zones:account=%s:region=%s", account, s.Region)), s.AvailabilityZones)
	}
	awscdk.Tags_Of(st).Add(jsii.String("Project"), jsii.String("scrapeplatform"), nil)
	awscdk.Tags_Of(st).Add(jsii.String("Stage"), jsii.String(s.Name), nil)

	net := newNetwork(st, s)
	brk := newBroker(st, s, net)
	brk.users = newBrokerUsers(st, s, net, brk, art)
	scripts := newScriptsBucket(st)
	results := newResultsBucket(st, s, scripts.logs)
	webhookSecret := newWebhookSecret(st, s)
	obs := newAlerting(st, s)
	prom := newPrometheus(st, s)
	id := newIdentity(st, s)
	workers := newWorkers(st, s, net, brk, scripts, results, webhookSecret, prom, art)
	api := newAPI(st, s, net, brk, id, results, art)
	depth := newQueueDepth(st, s, net, brk, workers, art)
	newScaling(st, s, workers, obs)
	newDashboardAndAlarms(st, s, obs, brk, api, workers, depth)
	suppressLogRetentionProvider(st)
	p := &Platform{Stack: st, Settings: s}
	if s.Observability.Grafana {
		p.Grafana = newGrafanaStack(scope, s, env, prom)
	}

	out := func(id, value, desc string) {
		awscdk.NewCfnOutput(st, jsii.String(id), &awscdk.CfnOutputProps{Value: jsii.String(value), Description: jsii.String(desc)})
	}
	out("Stage", s.Name, "stage name")
	out("Region", s.Region, "region of the stack")
	out("ApiUrl", *api.url, "base URL of the HTTP API (JWT routes at /, IAM routes at /iam/)")
	out("ApiIamRoutesArn", *awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String("arn:"), st.Partition(), jsii.String(":execute-api:"), st.Region(), jsii.String(":"), st.Account(), jsii.String(":"), api.apiID, jsii.String("/*/*" + MachinePrefix + "/*"),
	}), "resource to grant machine clients execute-api:Invoke on (the IAM-authorized routes)")
	out("ScriptsBucketName", *scripts.bucket.BucketName(), "bucket the workers read scripts from (prefix scripts/)")
	out("ResultsBucketName", *results.bucket.BucketName(), "job store of the gateway and the workers (JOB_STORE_BUCKET): jobs/, results/, idempotency/")
	out("WebhookSecretArn", *webhookSecret.SecretArn(), "Secrets Manager secret whose value, prefixed whsec_, verifies webhook signatures (WEBHOOK_SECRET of the workers)")
	out("BrokerSecretArn", *brk.secret.SecretArn(), "Secrets Manager secret with the broker administrator's credentials (only the BrokerUsers custom resource reads it)")
	out("ClusterName", *workers.cluster.ClusterName(), "ECS cluster of the workers")
	out("WorkerServiceName", *workers.service.ServiceName(), "ECS service of the workers")
	out("DashboardName", *obs.dashboardName, "CloudWatch dashboard")
	out("AlarmTopicArn", *obs.topic.TopicArn(), "SNS topic the alarms notify")
	out("PrometheusEndpoint", *prom.workspace.AttrPrometheusEndpoint(), "Amazon Managed Service for Prometheus workspace endpoint")
	out("BrokerName", brk.name, "Amazon MQ broker (its name changes when a setting forces a replacement)")
	out("JwtIssuer", *id.issuer, "issuer the JWT authorizer accepts")
	if len(id.scopes) > 0 {
		out("JwtScopes", strings.Join(id.scopes, " "), "scopes the user routes require (one of them)")
	}
	if id.pool != nil {
		out("UserPoolId", *id.pool.UserPoolId(), "Cognito user pool of the stage (the JWT issuer)")
		out("MachineClientId", *id.client.UserPoolClientId(), "app client for machine callers (client-credentials grant; secret: aws cognito-idp describe-user-pool-client)")
		out("TokenUrl", *id.tokenURL, "OAuth 2.0 token endpoint (client-credentials grant)")
	}
	return p, nil
}
