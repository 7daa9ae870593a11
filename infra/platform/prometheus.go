package platform

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsaps"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsgrafana"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/scrapeplatform/platform/infra/stage"
)

// WorkerMetricsPort is WORKER_METRICS_ADDR's port: /metrics and /healthz.
const WorkerMetricsPort = 9100

type prometheus struct {
	workspace awsaps.CfnWorkspace
}

func newPrometheus(st awscdk.Stack, s stage.Settings) *prometheus {
	ws := awsaps.NewCfnWorkspace(st, jsii.String("Prometheus"), &awsaps.CfnWorkspaceProps{
		Alias: jsii.String("scraping-" + s.Name),
	})
	return &prometheus{workspace: ws}
}

// adotConfig is the ADOT collector's configuration for the worker task's sidecar: scrape the worker's
// /metrics next door every 30 s, label every series with the task's ECS identity (otherwise the tasks'
// series would collide), and remote-write them to the Prometheus workspace with SigV4 (the task role).
// remoteWriteURL is the workspace's endpoint + "api/v1/remote_write".
func adotConfig(region, remoteWriteURL string) string {
	return fmt.Sprintf(`extensions:
  sigv4auth:
    region: %[1]s
    service: aps
  health_check:
    endpoint: 127.0.0.1:13133
receivers:
  prometheus:
    config:
      global:
        scrape_interval: 30s
        scrape_timeout: 10s
      scrape_configs:
        - job_name: scraping-worker
          metrics_path: /metrics
          static_configs:
            - targets: ["127.0.0.1:%[3]d"]
processors:
  resourcedetection:
    detectors: [env, ecs]
    timeout: 5s
  batch:
    timeout: 30s
exporters:
  prometheusremotewrite:
    endpoint: %[2]s
    auth:
      authenticator: sigv4auth
    resource_to_telemetry_conversion:
      enabled: true
service:
  extensions: [sigv4auth, health_check]
  pipelines:
    metrics:
      receivers: [prometheus]
      processors: [resourcedetection, batch]
      exporters: [prometheusremotewrite]
`, region, remoteWriteURL, WorkerMetricsPort)
}

// GrafanaStackName is the CloudFormation stack of a stage's optional Grafana workspace.
func GrafanaStackName(stageName string) string { return "ScrapingGrafana-" + stageName }

// newGrafanaStack adds the stage's optional Grafana stack: an Amazon Managed Grafana workspace whose role
// may query the platform's Prometheus workspace and read CloudWatch (metrics, alarms, logs) in this
// account. Users sign in through IAM Identity Center, which must be enabled in the account's organization
// first (infra/README.md, Grafana). It is a stack of its own so that a missing prerequisite fails this
// stack alone and can never roll back the platform (the broker takes 20 minutes to recreate).
func newGrafanaStack(scope constructs.Construct, s stage.Settings, env *awscdk.Environment, prom *prometheus) awscdk.Stack {
	st := awscdk.NewStack(scope, jsii.String(GrafanaStackName(s.Name)), &awscdk.StackProps{
		Env:         env,
		Description: jsii.String(fmt.Sprintf("Scraping platform, stage %s: Amazon Managed Grafana on the platform's Prometheus workspace and CloudWatch", s.Name)),
	})
	awscdk.Tags_Of(st).Add(jsii.String("Project"), jsii.String("scrapeplatform"), nil)
	awscdk.Tags_Of(st).Add(jsii.String("Stage"), jsii.String(s.Name), nil)
	ws := newGrafana(st, s, prom)
	awscdk.NewCfnOutput(st, jsii.String("GrafanaUrl"), &awscdk.CfnOutputProps{
		Value:       awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("https://"), ws.AttrEndpoint()}),
		Description: jsii.String("Grafana workspace URL (sign in through IAM Identity Center)"),
	})
	return st
}

func newGrafana(st awscdk.Stack, s stage.Settings, prom *prometheus) awsgrafana.CfnWorkspace {
	role := awsiam.NewRole(st, jsii.String("GrafanaRole"), &awsiam.RoleProps{
		Description: jsii.String("Amazon Managed Grafana of scraping-" + s.Name + ": reads the Prometheus workspace and CloudWatch"),
		AssumedBy: awsiam.NewServicePrincipal(jsii.String("grafana.amazonaws.com"), &awsiam.ServicePrincipalOpts{
			Conditions: &map[string]interface{}{
				"StringEquals": map[string]interface{}{"aws:SourceAccount": st.Account()},
			},
		}),
	})
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("QueryPrometheus"),
		Actions:   jsii.Strings("aps:QueryMetrics", "aps:GetSeries", "aps:GetLabels", "aps:GetMetricMetadata", "aps:DescribeWorkspace"),
		Resources: jsii.Strings(*prom.workspace.AttrArn()),
	}))
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid: jsii.String("ReadCloudWatch"),
		Actions: jsii.Strings("aps:ListWorkspaces",
			"cloudwatch:DescribeAlarmsForMetric", "cloudwatch:DescribeAlarmHistory", "cloudwatch:DescribeAlarms",
			"cloudwatch:ListMetrics", "cloudwatch:GetMetricData", "cloudwatch:GetInsightRuleReport",
			"logs:DescribeLogGroups", "logs:GetLogGroupFields", "logs:StartQuery", "logs:StopQuery", "logs:GetQueryResults", "logs:GetLogEvents",
			"ec2:DescribeRegions", "tag:GetResources"),
		Resources: jsii.Strings("*"),
	}))
	suppress(role, finding("AwsSolutions-IAM5",
		"Grafana's CloudWatch data source lists and reads metrics, alarms and log queries across the account, and aps:ListWorkspaces "+
			"finds the workspace; none of these read-only actions supports resource-level permissions. Prometheus queries are limited "+
			"to this stage's workspace.",
		"Resource::*"))

	return awsgrafana.NewCfnWorkspace(st, jsii.String("Grafana"), &awsgrafana.CfnWorkspaceProps{
		Name:                    jsii.String("scraping-" + s.Name),
		Description:             jsii.String("Dashboards of the scraping platform, stage " + s.Name),
		AccountAccessType:       jsii.String("CURRENT_ACCOUNT"),
		AuthenticationProviders: jsii.Strings("AWS_SSO"),
		PermissionType:          jsii.String("CUSTOMER_MANAGED"),
		RoleArn:                 role.RoleArn(),
		DataSources:             jsii.Strings("PROMETHEUS", "CLOUDWATCH"),
	})
}
