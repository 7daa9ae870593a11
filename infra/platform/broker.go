package platform

import (
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsamazonmq"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/scrapeplatform/platform/infra/stage"
)

// suppressLogRetentionProvider records the accepted findings of CDK's singleton log-retention function
// (the provider of the broker's log retention; it also sets a one-day retention on its own log group). Call
// it when the stack is complete: its role's policy is created by the grants.
func suppressLogRetentionProvider(st awscdk.Stack) {
	provider := st.Node().TryFindChild(jsii.String(logRetentionProvider))
	if provider == nil {
		panic("CDK's log-retention function is not in the stack under " + logRetentionProvider)
	}
	cdknag.NagSuppressions_AddResourceSuppressions(provider, &[]*cdknag.NagPackSuppression{
		finding("AwsSolutions-IAM4",
			"CDK's log-retention function uses AWSLambdaBasicExecutionRole, the AWS-maintained minimum for writing its own logs; "+
				"it runs only while CloudFormation creates or updates the retention of Amazon MQ's log group.",
			lambdaBasicPolicy),
		finding("AwsSolutions-IAM5",
			"CDK's log-retention function may set the retention of Amazon MQ's general log group, whose name holds the broker id known "+
				"only at deploy time (log-group:/aws/amazonmq/broker/<id>/general:*); logs:DescribeLogGroups and the retention calls CDK "+
				"grants on * have no narrower resource.",
			matching(`/^Resource::arn:aws:logs:.*:log-group:\/aws\/amazonmq\/broker\/<Broker\.Id>\/general:\*$/`), "Resource::*"),
	}, jsii.Bool(true))
}

// logRetentionProvider is the construct id of CDK's singleton log-retention function in a stack.
const logRetentionProvider = "LogRetentionaae0aa3c5b4d4f87b02d85b201efdd8a"

// BrokerUser is the Amazon MQ user CloudFormation creates, an administrator; only the BrokerUsers custom
// resource uses it, to make the processes' own users (brokerusers.go).
const BrokerUser = "scraper"

type broker struct {
	name   string
	broker awsamazonmq.CfnBroker
	secret awssecretsmanager.Secret
	sg     awsec2.SecurityGroup
	// amqpEndpoint is amqps://<host>:5671, managementURL https://<host> (CloudFormation tokens).
	amqpEndpoint  *string
	managementURL *string
	// users are the least-privilege users of the gateway, the workers and the queue-depth Lambda.
	users *brokerUsers
}

// BrokerName is the broker's name: the stage, then a digest of the settings behind every property
// CloudFormation can only change by replacing the broker (engine, deployment mode, subnets through the
// AZs and the CIDR, public access), the engine's major version (RabbitMQ 3 to 4 has no in-place upgrade)
// and broker.generation. Amazon MQ names are unique per account and
// region and the property is required, so a fixed name would make every replacement fail ("already
// exists"); with the digest, CloudFormation creates the new broker under its new name, moves every
// client to it, and then deletes (or, with retainData, keeps) the old one.
func BrokerName(s stage.Settings) string {
	h := sha256.New()
	major, _, _ := strings.Cut(s.Broker.EngineVersion, ".")
	fmt.Fprintf(h, "engine=RABBITMQ %s\nmode=%s\nazs=%s\ncidr=%s\npublic=false\ngeneration=%d\n",
		major, s.Broker.DeploymentMode, strings.Join(s.AvailabilityZones, ","), s.Network.CIDR, s.Broker.Generation)
	return fmt.Sprintf("scraping-%s-%x", s.Name, h.Sum(nil)[:4])
}

func newBroker(st awscdk.Stack, s stage.Settings, net *network) *broker {
	name := BrokerName(s)
	// Amazon MQ passwords: 12-250 characters without , : = — alphanumeric only, so the password can sit
	// in an amqps:// URL without escaping in any client.
	secret := awssecretsmanager.NewSecret(st, jsii.String("BrokerSecret"), &awssecretsmanager.SecretProps{
		Description: jsii.String("Amazon MQ administrator of the broker of scraping-" + s.Name + " (read by the BrokerUsers custom resource only): {\"username\", \"password\"}"),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			SecretStringTemplate: jsii.String(`{"username":"` + BrokerUser + `"}`),
			GenerateStringKey:    jsii.String("password"),
			PasswordLength:       jsii.Number(32),
			ExcludePunctuation:   jsii.Bool(true),
		},
		RemovalPolicy: removalPolicy(s),
	})
	cdknag.NagSuppressions_AddResourceSuppressions(secret, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-SMG4"),
		Reason: jsii.String("Secrets Manager cannot rotate an Amazon MQ for RabbitMQ user by itself (there is no managed rotation " +
			"function for it); rotation is the documented runbook in README.md (Operations, rotating secrets): update the user " +
			"through the Amazon MQ API, then the secret; the Lambdas read the secret at start and every minute."),
	}}, jsii.Bool(false))

	sg := securityGroup(st, "BrokerSecurityGroup", "Amazon MQ broker: AMQPS 5671 from the gateway Lambda and the workers, HTTPS 443 from the queue-depth Lambda and the BrokerUsers custom resource", net.vpc, false)

	subnets := net.vpc.SelectSubnets(net.internal).SubnetIds
	if !s.Broker.Cluster() {
		first := (*subnets)[0]
		subnets = &[]*string{first}
	}
	b := awsamazonmq.NewCfnBroker(st, jsii.String("Broker"), &awsamazonmq.CfnBrokerProps{
		BrokerName:              jsii.String(name),
		EngineType:              jsii.String("RABBITMQ"),
		EngineVersion:           jsii.String(s.Broker.EngineVersion),
		HostInstanceType:        jsii.String(s.Broker.InstanceType),
		DeploymentMode:          jsii.String(s.Broker.DeploymentMode),
		PubliclyAccessible:      jsii.Bool(false),
		AutoMinorVersionUpgrade: jsii.Bool(true),
		AuthenticationStrategy:  jsii.String("SIMPLE"),
		SubnetIds:               subnets,
		SecurityGroups:          jsii.Strings(*sg.SecurityGroupId()),
		Users: &[]*awsamazonmq.CfnBroker_UserProperty{{
			// Dynamic references: CloudFormation resolves them at deploy time; the template holds no secret.
			Username: secret.SecretValueFromJson(jsii.String("username")).UnsafeUnwrap(),
			Password: secret.SecretValueFromJson(jsii.String("password")).UnsafeUnwrap(),
		}},
		Logs: &awsamazonmq.CfnBroker_LogListProperty{General: jsii.Bool(true)},
		MaintenanceWindowStartTime: &awsamazonmq.CfnBroker_MaintenanceWindowProperty{
			DayOfWeek: jsii.String(s.Broker.MaintenanceWindow.DayOfWeek),
			TimeOfDay: jsii.String(s.Broker.MaintenanceWindow.TimeOfDay),
			TimeZone:  jsii.String(s.Broker.MaintenanceWindow.TimeZone),
		},
	})
	// Prod keeps its broker when the stack is deleted or the broker is replaced: the old broker stays up
	// for draining and inspection until an operator deletes it (infra/README.md, Replacing the broker).
	b.ApplyRemovalPolicy(removalPolicy(s), &awscdk.RemovalPolicyOptions{ApplyToUpdateReplacePolicy: jsii.Bool(true)})

	// Amazon MQ creates its own log group for the general logs, named after the broker id, and never sets a
	// retention; CDK's log-retention resource creates it or sets the stage's retention on it, whichever
	// comes first.
	awslogs.NewLogRetention(st, jsii.String("BrokerLogRetention"), &awslogs.LogRetentionProps{
		LogGroupName:  awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("/aws/amazonmq/broker/"), b.AttrId(), jsii.String("/general")}),
		Retention:     retention(s),
		RemovalPolicy: removalPolicy(s),
	})

	// AmqpEndpoints[0] is "amqps://b-….mq.<region>.on.aws:5671"; the management API (the web console) is
	// HTTPS on port 443 of the same host: "https:" + "//b-….on.aws" (the second ':'-separated field).
	amqp := awscdk.Fn_Select(jsii.Number(0), b.AttrAmqpEndpoints())
	mgmt := awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String("https:"),
		awscdk.Fn_Select(jsii.Number(1), awscdk.Fn_Split(jsii.String(":"), amqp, nil)),
	})
	return &broker{name: name, broker: b, secret: secret, sg: sg, amqpEndpoint: amqp, managementURL: mgmt}
}

// allowAMQPS lets peer reach the broker on 5671.
func (b *broker) allowAMQPS(peer awsec2.ISecurityGroup, who string) {
	b.sg.AddIngressRule(peer, awsec2.Port_Tcp(jsii.Number(5671)), jsii.String("AMQPS from "+who), jsii.Bool(false))
}

// allowManagement lets peer reach the management API on 443.
func (b *broker) allowManagement(peer awsec2.ISecurityGroup, who string) {
	b.sg.AddIngressRule(peer, awsec2.Port_Tcp(jsii.Number(443)), jsii.String("management API from "+who), jsii.Bool(false))
}
