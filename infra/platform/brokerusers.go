package platform

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/jsii-runtime-go"

	"github.com/scrapeplatform/platform/infra/stage"
)

// The least-privilege broker users (issue 11): Amazon MQ's CloudFormation resource creates one user, the
// administrator (BrokerSecret); the BrokerUsers custom resource (functions/cmd/brokerusers) makes, with it
// and through the management API, one user per process with the grants of shared/brokerusers. Only that
// function reads BrokerSecret.
const (
	GatewayBrokerUser    = "scrape-gateway"
	WorkerBrokerUser     = "scrape-worker"
	MonitoringBrokerUser = "scrape-monitoring"
)

type brokerUsers struct {
	gateway, worker, monitoring awssecretsmanager.Secret
	fn                          awslambda.Function
	resource                    awscdk.CustomResource
}

// roleSecret is a broker user's secret: {"username": user, "password": <generated>}.
func roleSecret(st awscdk.Stack, s stage.Settings, id, user, who string) awssecretsmanager.Secret {
	secret := awssecretsmanager.NewSecret(st, jsii.String(id), &awssecretsmanager.SecretProps{
		Description: jsii.String("RabbitMQ user of " + who + " on the broker of scraping-" + s.Name + " (made by the BrokerUsers custom resource): {\"username\", \"password\"}"),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			SecretStringTemplate: jsii.String(`{"username":"` + user + `"}`),
			GenerateStringKey:    jsii.String("password"),
			PasswordLength:       jsii.Number(32),
			ExcludePunctuation:   jsii.Bool(true),
		},
		RemovalPolicy: removalPolicy(s),
	})
	suppress(secret, finding("AwsSolutions-SMG4",
		"Secrets Manager has no rotation function for a RabbitMQ user on Amazon MQ; rotation is the documented runbook in README.md "+
			"(Operations, rotating secrets): set the new password on the broker through the management API with the administrator, "+
			"then put it into the secret; the processes read the secret at start (queue depth: every minute)."))
	return secret
}

// newBrokerUsers makes the users' secrets, the BrokerUsers function and its custom resource.
func newBrokerUsers(st awscdk.Stack, s stage.Settings, net *network, brk *broker, art Artifacts) *brokerUsers {
	u := &brokerUsers{
		gateway:    roleSecret(st, s, "GatewayBrokerSecret", GatewayBrokerUser, "the gateway Lambda"),
		worker:     roleSecret(st, s, "WorkerBrokerSecret", WorkerBrokerUser, "the workers"),
		monitoring: roleSecret(st, s, "MonitoringBrokerSecret", MonitoringBrokerUser, "the queue-depth Lambda"),
	}

	sg := securityGroup(st, "BrokerUsersSecurityGroup", "BrokerUsers custom resource: HTTPS to the broker management API, the VPC endpoints and S3", net.vpc, false)
	sg.AddEgressRule(brk.sg, awsec2.Port_Tcp(jsii.Number(443)), jsii.String("management API of the broker"), jsii.Bool(false))
	sg.AddEgressRule(awsec2.Peer_Ipv4(net.vpc.VpcCidrBlock()), awsec2.Port_Tcp(jsii.Number(443)), jsii.String("HTTPS to the VPC endpoints (Secrets Manager)"), jsii.Bool(false))
	// CloudFormation's presigned response URL is an S3 object: S3 through the VPC's gateway endpoint. S3's
	// prefix list id cannot be referenced without a lookup (synthesis makes none) or a custom resource; any
	// IPv4 on 443 is no wider in effect: the internal subnets have no route out of the VPC but the S3
	// endpoint's (as the gateway's rule for the job store).
	sg.AddEgressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Tcp(jsii.Number(443)), jsii.String("HTTPS to S3 (CloudFormation's response URL) through the gateway endpoint; the subnets route nowhere else"), jsii.Bool(false))
	brk.allowManagement(sg, "the BrokerUsers custom resource")

	u.fn = awslambda.NewFunction(st, jsii.String("BrokerUsersFunction"), &awslambda.FunctionProps{
		Description:    jsii.String("BrokerUsers custom resource: makes the broker's least-privilege users with the administrator (functions/cmd/brokerusers)"),
		Runtime:        awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:   awslambda.Architecture_ARM_64(),
		Handler:        jsii.String("bootstrap"),
		Code:           awslambda.Code_FromAsset(jsii.String(art.BrokerUsersCode), nil),
		MemorySize:     jsii.Number(128),
		Timeout:        awscdk.Duration_Minutes(jsii.Number(2)),
		Vpc:            net.vpc,
		VpcSubnets:     net.internal,
		SecurityGroups: &[]awsec2.ISecurityGroup{sg},
		LogGroup:       logGroup(st, "BrokerUsersLogs", s),
	})
	brk.secret.GrantRead(u.fn, nil)
	for _, sec := range []awssecretsmanager.Secret{u.gateway, u.worker, u.monitoring} {
		sec.GrantRead(u.fn, nil)
	}
	suppressLambdaRole(u.fn, "the BrokerUsers custom resource")

	user := func(role string, sec awssecretsmanager.Secret) map[string]any {
		return map[string]any{"Role": role, "SecretArn": sec.SecretArn()}
	}
	u.resource = awscdk.NewCustomResource(st, jsii.String("BrokerUsers"), &awscdk.CustomResourceProps{
		ServiceToken: u.fn.FunctionArn(),
		ResourceType: jsii.String("Custom::BrokerUsers"),
		Properties: &map[string]any{
			"ManagementURL":  brk.managementURL,
			"AdminSecretArn": brk.secret.SecretArn(),
			"TaskQueue":      TaskQueue,
			"Vhost":          "/",
			// The secrets' ARNs: a new secret changes the properties and re-runs the resource.
			"Users": []any{user("gateway", u.gateway), user("worker", u.worker), user("monitoring", u.monitoring)},
		},
		// The users live on the broker: a deleted stack (or a retained broker) keeps nothing of them to clean.
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	// Created after, and deleted before, everything its function needs to reach the broker, Secrets Manager
	// and the response URL: the broker's ingress rule, its own egress rules and the VPC's endpoints and routes.
	u.resource.Node().AddDependency(sg, brk.sg, net.vpc)
	return u
}
