package platform

import (
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/jsii-runtime-go"

	"github.com/scrapeplatform/platform/infra/stage"
)

type queueDepth struct {
	fn awslambda.Function
}

// newQueueDepth is the scheduled Lambda that publishes the queue depth and backlog per task (Amazon MQ 4.x
// has no per-queue CloudWatch metrics); see functions/queuedepth.
func newQueueDepth(st awscdk.Stack, s stage.Settings, net *network, brk *broker, w *workers, art Artifacts) *queueDepth {
	sg := securityGroup(st, "QueueDepthSecurityGroup", "queue-depth Lambda: HTTPS to the broker management API and the VPC endpoints", net.vpc, false)
	sg.AddEgressRule(brk.sg, awsec2.Port_Tcp(jsii.Number(443)), jsii.String("management API of the broker"), jsii.Bool(false))
	sg.AddEgressRule(awsec2.Peer_Ipv4(net.vpc.VpcCidrBlock()), awsec2.Port_Tcp(jsii.Number(443)), jsii.String("HTTPS to the VPC endpoints (Secrets Manager, CloudWatch, ECS)"), jsii.Bool(false))
	brk.allowManagement(sg, "the queue-depth Lambda")

	fn := awslambda.NewFunction(st, jsii.String("QueueDepth"), &awslambda.FunctionProps{
		Description:  jsii.String("Publishes the task queue's depth and backlog per task to CloudWatch every minute (functions/cmd/queuedepth)"),
		Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture: awslambda.Architecture_ARM_64(),
		Handler:      jsii.String("bootstrap"),
		Code:         awslambda.Code_FromAsset(jsii.String(art.QueueDepthCode), nil),
		MemorySize:   jsii.Number(128),
		Timeout:      awscdk.Duration_Seconds(jsii.Number(45)),
		// One run at a time; a run that fails is not retried: the next one is a minute away.
		ReservedConcurrentExecutions: jsii.Number(1),
		RetryAttempts:                jsii.Number(0),
		MaxEventAge:                  awscdk.Duration_Seconds(jsii.Number(60)),
		Vpc:                          net.vpc,
		VpcSubnets:                   net.internal,
		SecurityGroups:               &[]awsec2.ISecurityGroup{sg},
		LogGroup:                     logGroup(st, "QueueDepthLogs", s),
		Environment: &map[string]*string{
			"RABBITMQ_MANAGEMENT_URL": brk.managementURL,
			"RABBITMQ_SECRET_ARN":     brk.users.monitoring.SecretArn(),
			"RABBITMQ_TASK_QUEUE":     jsii.String(TaskQueue),
			// Its depth too, as DeadLetterMessages{Queue=<task>.webhooks.dead} (the webhook dead-letter alarm).
			"RABBITMQ_WEBHOOK_DEAD_LETTER_QUEUE": jsii.String(WebhookDeadLetterQueue),
			"ECS_CLUSTER":                        w.cluster.ClusterName(),
			"ECS_SERVICE":                        w.service.ServiceName(),
			"METRIC_NAMESPACE":                   jsii.String(MetricNamespace),
			"STAGE":                              jsii.String(s.Name),
			"LOG_LEVEL":                          jsii.String("info"),
			// Backpressure: the Lambda keeps the task queue's bound on the broker as a policy (Amazon MQ has
			// no CloudFormation resource for RabbitMQ policies).
			"TASK_QUEUE_MAX_LENGTH": jsii.String(strconv.Itoa(s.Broker.TaskQueueMaxLength)),
			// Amazon MQ asks for quorum-queue policies to apply to quorum_queues only (3.13 and 4.x know it).
			"TASK_QUEUE_POLICY_APPLY_TO": jsii.String("quorum_queues"),
		},
	})
	brk.users.monitoring.GrantRead(fn, nil)
	fn.Node().AddDependency(brk.users.resource)
	fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("DescribeWorkerService"),
		Actions:   jsii.Strings("ecs:DescribeServices"),
		Resources: jsii.Strings(*w.service.ServiceArn()),
	}))
	fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("PublishQueueMetrics"),
		Actions:    jsii.Strings("cloudwatch:PutMetricData"),
		Resources:  jsii.Strings("*"),
		Conditions: &map[string]interface{}{"StringEquals": map[string]interface{}{"cloudwatch:namespace": MetricNamespace}},
	}))
	suppressLambdaRole(fn, "the queue-depth Lambda")
	suppress(fn.Role(), finding("AwsSolutions-IAM5",
		"cloudwatch:PutMetricData has no resource-level permissions; the statement is limited to the ScrapingPlatform namespace by "+
			"the cloudwatch:namespace condition.",
		"Resource::*"))

	awsevents.NewRule(st, jsii.String("QueueDepthSchedule"), &awsevents.RuleProps{
		Description: jsii.String("Run the queue-depth Lambda every minute (the backlog-per-task scaling metric)"),
		Schedule:    awsevents.Schedule_Rate(awscdk.Duration_Minutes(jsii.Number(1))),
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(fn, &awseventstargets.LambdaFunctionProps{
			RetryAttempts: jsii.Number(0),
			MaxEventAge:   awscdk.Duration_Seconds(jsii.Number(60)),
		})},
	})
	return &queueDepth{fn: fn}
}
