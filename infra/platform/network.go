package platform

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/jsii-runtime-go"

	"github.com/scrapeplatform/platform/infra/stage"
)

// Subnet groups. Broker and Lambdas sit in "internal" (no route out of the VPC: everything they call
// is in the VPC or behind an endpoint); workers sit in "workers", whose NAT route exists only because
// scripts fetch web pages; "public" holds nothing but the NAT gateways.
const (
	subnetPublic   = "public"
	subnetWorkers  = "workers"
	subnetInternal = "internal"
)

type network struct {
	vpc      awsec2.Vpc
	internal *awsec2.SubnetSelection
	workers  *awsec2.SubnetSelection
	// workersPublicIP: the workers sit in the public subnets with public IPs (workerEgress "publicIp").
	workersPublicIP bool
}

func newNetwork(st awscdk.Stack, s stage.Settings) *network {
	flowLogs := logGroup(st, "VpcFlowLogs", s)
	// With workerEgress "publicIp" (the dev option) there is no NAT gateway and so no Elastic IP: the
	// workers run in the public subnets with an auto-assigned public IPv4 address and a security group
	// that admits nothing.
	publicIP := s.Network.WorkerEgress == stage.EgressPublicIP
	subnets := []*awsec2.SubnetConfiguration{
		{Name: jsii.String(subnetPublic), SubnetType: awsec2.SubnetType_PUBLIC, CidrMask: jsii.Number(24), MapPublicIpOnLaunch: jsii.Bool(false)},
		{Name: jsii.String(subnetWorkers), SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS, CidrMask: jsii.Number(20)},
		{Name: jsii.String(subnetInternal), SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED, CidrMask: jsii.Number(24)},
	}
	workerGroup := subnetWorkers
	if publicIP {
		subnets = []*awsec2.SubnetConfiguration{subnets[0], subnets[2]}
		workerGroup = subnetPublic
	}
	vpc := awsec2.NewVpc(st, jsii.String("Vpc"), &awsec2.VpcProps{
		IpAddresses:         awsec2.IpAddresses_Cidr(jsii.String(s.Network.CIDR)),
		AvailabilityZones:   jsii.Strings(s.AvailabilityZones...),
		NatGateways:         jsii.Number(s.Network.NATGateways),
		SubnetConfiguration: &subnets,
		// Off on purpose: restricting the default security group takes a custom-resource Lambda, and nothing
		// here uses the default group (every resource gets its own).
		RestrictDefaultSecurityGroup: jsii.Bool(false),
		FlowLogs: &map[string]*awsec2.FlowLogOptions{
			"All": {
				Destination: awsec2.FlowLogDestination_ToCloudWatchLogs(flowLogs, nil),
				TrafficType: awsec2.FlowLogTrafficType_ALL,
			},
		},
	})
	internal := &awsec2.SubnetSelection{SubnetGroupName: jsii.String(subnetInternal)}
	workers := &awsec2.SubnetSelection{SubnetGroupName: jsii.String(workerGroup)}

	// S3 (scripts, ECR image layers) through a free gateway endpoint in every private route table.
	vpc.AddGatewayEndpoint(jsii.String("S3Endpoint"), &awsec2.GatewayVpcEndpointOptions{
		Service: awsec2.GatewayVpcEndpointAwsService_S3(),
		Subnets: &[]*awsec2.SubnetSelection{internal, workers},
	})
	// The AWS APIs the workload calls, through interface endpoints with private DNS, so that neither the
	// isolated subnets nor the workers' AWS traffic need a public path:
	//   Secrets Manager (broker credentials: Lambdas, ECS secret injection), ECR API + Docker (image pull),
	//   CloudWatch Logs (awslogs driver), CloudWatch (queue-depth PutMetricData), ECS (DescribeServices),
	//   Prometheus workspaces (the ADOT sidecar's remote write).
	for _, ep := range []struct {
		id      string
		service awsec2.InterfaceVpcEndpointAwsService
	}{
		{"SecretsManagerEndpoint", awsec2.InterfaceVpcEndpointAwsService_SECRETS_MANAGER()},
		{"EcrApiEndpoint", awsec2.InterfaceVpcEndpointAwsService_ECR()},
		{"EcrDockerEndpoint", awsec2.InterfaceVpcEndpointAwsService_ECR_DOCKER()},
		{"LogsEndpoint", awsec2.InterfaceVpcEndpointAwsService_CLOUDWATCH_LOGS()},
		{"MonitoringEndpoint", awsec2.InterfaceVpcEndpointAwsService_CLOUDWATCH_MONITORING()},
		{"EcsEndpoint", awsec2.InterfaceVpcEndpointAwsService_ECS()},
		{"PrometheusEndpoint", awsec2.InterfaceVpcEndpointAwsService_PROMETHEUS_WORKSPACES()},
	} {
		endpoint := vpc.AddInterfaceEndpoint(jsii.String(ep.id), &awsec2.InterfaceVpcEndpointOptions{
			Service:           ep.service,
			Subnets:           internal,
			PrivateDnsEnabled: jsii.Bool(true),
			// Open = HTTPS from the VPC's CIDR only.
			Open: jsii.Bool(true),
		})
		suppress(endpoint, finding("CdkNagValidationFailure",
			"EC23 cannot evaluate the endpoint's ingress rule because its source is the VPC's CIDR as a CloudFormation reference "+
				"(Fn::GetAtt Vpc.CidrBlock); the rule admits HTTPS from inside the VPC only, never 0.0.0.0/0.",
			"AwsSolutions-EC23"))
	}
	return &network{vpc: vpc, internal: internal, workers: workers, workersPublicIP: publicIP}
}

// securityGroup returns a group with a description and no outbound rules unless allowOut.
func securityGroup(st awscdk.Stack, id, desc string, vpc awsec2.IVpc, allowOut bool) awsec2.SecurityGroup {
	return awsec2.NewSecurityGroup(st, jsii.String(id), &awsec2.SecurityGroupProps{
		Vpc:              vpc,
		Description:      jsii.String(desc),
		AllowAllOutbound: jsii.Bool(allowOut),
	})
}

// retentionDays maps the day counts CloudWatch Logs accepts (stage.Settings validates them) to the CDK's
// names for them.
var retentionDays = map[int]awslogs.RetentionDays{
	1: awslogs.RetentionDays_ONE_DAY, 3: awslogs.RetentionDays_THREE_DAYS, 5: awslogs.RetentionDays_FIVE_DAYS,
	7: awslogs.RetentionDays_ONE_WEEK, 14: awslogs.RetentionDays_TWO_WEEKS, 30: awslogs.RetentionDays_ONE_MONTH,
	60: awslogs.RetentionDays_TWO_MONTHS, 90: awslogs.RetentionDays_THREE_MONTHS, 120: awslogs.RetentionDays_FOUR_MONTHS,
	150: awslogs.RetentionDays_FIVE_MONTHS, 180: awslogs.RetentionDays_SIX_MONTHS, 365: awslogs.RetentionDays_ONE_YEAR,
	400: awslogs.RetentionDays_THIRTEEN_MONTHS, 545: awslogs.RetentionDays_EIGHTEEN_MONTHS, 731: awslogs.RetentionDays_TWO_YEARS,
	1096: awslogs.RetentionDays_THREE_YEARS, 1827: awslogs.RetentionDays_FIVE_YEARS, 2192: awslogs.RetentionDays_SIX_YEARS,
	2557: awslogs.RetentionDays_SEVEN_YEARS, 2922: awslogs.RetentionDays_EIGHT_YEARS, 3288: awslogs.RetentionDays_NINE_YEARS,
	3653: awslogs.RetentionDays_TEN_YEARS,
}

// retention is the stage's log retention.
func retention(s stage.Settings) awslogs.RetentionDays {
	if r, ok := retentionDays[s.LogRetentionDays]; ok {
		return r
	}
	panic(fmt.Sprintf("log retention of %d days has no CDK name (stage.Settings.Validate should have refused it)", s.LogRetentionDays))
}

// logGroup is a log group with the stage's retention and removal policy.
func logGroup(st awscdk.Stack, id string, s stage.Settings) awslogs.LogGroup {
	return awslogs.NewLogGroup(st, jsii.String(id), &awslogs.LogGroupProps{Retention: retention(s), RemovalPolicy: removalPolicy(s)})
}

// removalPolicy keeps data on stack deletion where the stage says so.
func removalPolicy(s stage.Settings) awscdk.RemovalPolicy {
	if s.RetainData {
		return awscdk.RemovalPolicy_RETAIN
	}
	return awscdk.RemovalPolicy_DESTROY
}
