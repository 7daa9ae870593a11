package platform

import (
	"encoding/json"
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2authorizers"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/jsii-runtime-go"

	"github.com/scrapeplatform/platform/infra/stage"
)

// MachinePrefix is where the IAM-authorized copies of the routes live; cmd/gateway strips it.
const MachinePrefix = "/iam"

// gatewayTimeoutSeconds is the Lambda's timeout: under API Gateway's fixed 30 s, above the longest the
// gateway holds a request: the sync window (SCRAPE_SYNC_WAIT, at most stage.MaxSyncWaitSeconds = 25 s)
// plus GatewayAnswerMarginSeconds to read the job and answer 202 (a long poll of GET /jobs/{id} holds at
// most 20 s).
const gatewayTimeoutSeconds = 29

// GatewayAnswerMarginSeconds is what the Lambda's timeout leaves beyond the longest sync window.
const GatewayAnswerMarginSeconds = gatewayTimeoutSeconds - stage.MaxSyncWaitSeconds

type api struct {
	fn       awslambda.Function
	httpAPI  awsapigatewayv2.HttpApi
	stage    awsapigatewayv2.HttpStage
	url      *string
	apiID    *string
	logGroup awslogs.LogGroup
}

// route is one route of the API.
type route struct {
	method awsapigatewayv2.HttpMethod
	path   string
	// scoped routes require the stage's JWT scopes; /health does not.
	scoped bool
	// public routes take no token at their path when the stage says so (GET /status, api.statusPublic);
	// their IAM copy stays authorized.
	public bool
}

// Routes are the handler's routes; each is served twice, with the JWT authorizer at its path and with
// IAM authorization under MachinePrefix.
// The job routes serve long scrapes as an asynchronous wait (POST /scrape with Prefer: respond-async, then
// GET /jobs/{id}); the smoke check uses them.
var routes = []route{
	{method: awsapigatewayv2.HttpMethod_POST, path: "/scrape", scoped: true},
	{method: awsapigatewayv2.HttpMethod_GET, path: "/status", scoped: true, public: true},
	{method: awsapigatewayv2.HttpMethod_GET, path: "/jobs/{id}", scoped: true},
	{method: awsapigatewayv2.HttpMethod_DELETE, path: "/jobs/{id}", scoped: true},
	{method: awsapigatewayv2.HttpMethod_GET, path: "/health"},
}

func newAPI(st awscdk.Stack, s stage.Settings, net *network, brk *broker, id *identity, results *resultsBucket, art Artifacts) *api {
	sg := securityGroup(st, "GatewaySecurityGroup", "gateway Lambda: AMQPS to the broker, HTTPS to the VPC endpoints", net.vpc, false)
	sg.AddEgressRule(brk.sg, awsec2.Port_Tcp(jsii.Number(5671)), jsii.String("AMQPS to the broker"), jsii.Bool(false))
	sg.AddEgressRule(awsec2.Peer_Ipv4(net.vpc.VpcCidrBlock()), awsec2.Port_Tcp(jsii.Number(443)), jsii.String("HTTPS to the VPC endpoints (Secrets Manager)"), jsii.Bool(false))
	// The job store: S3 through the VPC's gateway endpoint. S3's addresses are a regional prefix list whose
	// id CloudFormation cannot look up without a custom resource; any IPv4 on 443 is no wider in effect:
	// the internal subnets have no route out of the VPC but the S3 endpoint's.
	sg.AddEgressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Tcp(jsii.Number(443)), jsii.String("HTTPS to S3 (the job store) through the gateway endpoint; the subnets route nowhere else"), jsii.Bool(false))
	brk.allowAMQPS(sg, "the gateway Lambda")

	defaultTimeout := min(20, s.API.ScrapeMaxTimeoutSeconds)
	// One broker connection per execution environment: a reservation caps the gateway below the broker's
	// connection limit (stage.Settings.Validate checks the budget); without one the API throttle bounds it.
	var reserved *float64
	if s.API.GatewayReservedConcurrency > 0 {
		reserved = jsii.Number(s.API.GatewayReservedConcurrency)
	}
	fn := awslambda.NewFunction(st, jsii.String("Gateway"), &awslambda.FunctionProps{
		Description:                  jsii.String("HTTP API handler: POST /scrape, GET /status, GET and DELETE /jobs/{id}, GET /health (functions/cmd/gateway)"),
		Runtime:                      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:                 awslambda.Architecture_ARM_64(),
		Handler:                      jsii.String("bootstrap"),
		Code:                         awslambda.Code_FromAsset(jsii.String(art.GatewayCode), nil),
		MemorySize:                   jsii.Number(s.API.GatewayMemoryMiB),
		Timeout:                      awscdk.Duration_Seconds(jsii.Number(gatewayTimeoutSeconds)),
		ReservedConcurrentExecutions: reserved,
		Vpc:                          net.vpc,
		VpcSubnets:                   net.internal,
		SecurityGroups:               &[]awsec2.ISecurityGroup{sg},
		LogGroup:                     logGroup(st, "GatewayLogs", s),
		Environment: &map[string]*string{
			"AUTH_MODE":              jsii.String("apigateway"),
			"RABBITMQ_SECRET_ARN":    brk.users.gateway.SecretArn(),
			"RABBITMQ_ENDPOINT":      brk.amqpEndpoint,
			"RABBITMQ_TASK_QUEUE":    jsii.String(TaskQueue),
			"SCRAPE_MAX_TIMEOUT":     jsii.String(fmt.Sprintf("%ds", s.API.ScrapeMaxTimeoutSeconds)),
			"SCRAPE_DEFAULT_TIMEOUT": jsii.String(fmt.Sprintf("%ds", defaultTimeout)),
			"SCRAPE_SYNC_WAIT":       jsii.String(fmt.Sprintf("%ds", s.API.SyncWindowSeconds())),
			"STATUS_PUBLIC":          jsii.String(fmt.Sprint(s.API.StatusIsPublic())),
			"JOB_STORE_BUCKET":       results.bucket.BucketName(),
			"JOB_RETENTION":          jsii.String(fmt.Sprintf("%dh", 24*s.API.JobRetention())),
			// EMF metrics (namespace ScrapingPlatform) carry the stage as a dimension.
			"STAGE":     jsii.String(s.Name),
			"LOG_LEVEL": jsii.String("info"),
		},
	})
	brk.users.gateway.GrantRead(fn, nil)
	// Its user exists before the gateway starts (a cold start fails without it).
	fn.Node().AddDependency(brk.users.resource)
	// Jobs: the gateway records accepted jobs and cancels (jobs/), claims idempotency keys (idempotency/),
	// and reads claim-checked results to inline them or presign their URL (results/, read only).
	results.grant(fn.Role(), "GatewayJobStore", []string{JobsPrefix, IdempotencyPrefix, ResultsPrefix}, []string{JobsPrefix, IdempotencyPrefix})
	suppress(fn.Role(), finding("AwsSolutions-IAM5",
		"The job store: objects named by request id or idempotency-key digest, unknown at deploy time (s3:GetObject on jobs/*, "+
			"idempotency/* and results/*, s3:PutObject on jobs/* and idempotency/* of the results bucket; no delete).",
		matching(`/^Resource::<ResultsBucket[0-9A-F]+\.Arn>\/(jobs|results|idempotency)\/\*$/`)))
	suppressLambdaRole(fn, "the gateway")

	httpAPI := awsapigatewayv2.NewHttpApi(st, jsii.String("Api"), &awsapigatewayv2.HttpApiProps{
		ApiName:            jsii.String("scraping-" + s.Name),
		Description:        jsii.String("Scraping platform API, stage " + s.Name),
		CreateDefaultStage: jsii.Bool(false),
	})
	accessLogs := logGroup(st, "ApiAccessLogs", s)
	// $default: the Lambda sees paths without a stage prefix, exactly as the handler routes them.
	apiStage := httpAPI.AddStage(jsii.String("DefaultStage"), &awsapigatewayv2.HttpStageOptions{
		StageName:  jsii.String("$default"),
		AutoDeploy: jsii.Bool(true),
		Throttle: &awsapigatewayv2.ThrottleSettings{
			RateLimit:  jsii.Number(s.API.ThrottleRateLimit),
			BurstLimit: jsii.Number(s.API.ThrottleBurstLimit),
		},
	})
	// Access logs through the L1 stage: one JSON line per request, with who called and why it failed.
	cfnStage := apiStage.Node().DefaultChild().(awsapigatewayv2.CfnStage)
	cfnStage.SetAccessLogSettings(&awsapigatewayv2.CfnStage_AccessLogSettingsProperty{
		DestinationArn: accessLogs.LogGroupArn(),
		Format:         jsii.String(accessLogFormat()),
	})

	integration := awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("GatewayIntegration"), fn, &awsapigatewayv2integrations.HttpLambdaIntegrationProps{
		PayloadFormatVersion: awsapigatewayv2.PayloadFormatVersion_VERSION_2_0(),
		Timeout:              awscdk.Duration_Seconds(jsii.Number(gatewayTimeoutSeconds)),
	})
	jwt := awsapigatewayv2authorizers.NewHttpJwtAuthorizer(jsii.String("JwtAuthorizer"), id.issuer, &awsapigatewayv2authorizers.HttpJwtAuthorizerProps{
		AuthorizerName: jsii.String("jwt"),
		JwtAudience:    id.audiences,
		IdentitySource: jsii.Strings("$request.header.Authorization"),
	})
	iam := awsapigatewayv2authorizers.NewHttpIamAuthorizer()
	for _, r := range routes {
		opts := &awsapigatewayv2.AddRoutesOptions{
			Path:        jsii.String(r.path),
			Methods:     &[]awsapigatewayv2.HttpMethod{r.method},
			Integration: integration,
			Authorizer:  jwt,
		}
		public := r.public && s.API.StatusIsPublic()
		if public {
			// The spec's aggregate figures, for anyone; the handler (STATUS_PUBLIC) keeps the details for
			// authenticated callers, who ask on the IAM copy.
			opts.Authorizer = awsapigatewayv2.NewHttpNoneAuthorizer()
		} else if r.scoped && len(id.scopes) > 0 {
			opts.AuthorizationScopes = jsii.Strings(id.scopes...)
		}
		for _, rt := range *httpAPI.AddRoutes(opts) {
			if public {
				suppress(rt, finding("AwsSolutions-APIG4",
					"GET /status is public by the stage's setting api.statusPublic (the API's own spec calls it without a token): it "+
						"serves aggregate figures only (status, queue length, active workers, memory, cpu); set statusPublic false to put "+
						"it behind the JWT authorizer."))
			}
		}
		httpAPI.AddRoutes(&awsapigatewayv2.AddRoutesOptions{
			Path:        jsii.String(MachinePrefix + r.path),
			Methods:     &[]awsapigatewayv2.HttpMethod{r.method},
			Integration: integration,
			Authorizer:  iam,
		})
	}
	return &api{fn: fn, httpAPI: httpAPI, stage: apiStage, url: apiStage.Url(), apiID: httpAPI.ApiId(), logGroup: accessLogs}
}

// accessLogFormat is the access log line: JSON with the fields an operator searches by.
func accessLogFormat() string {
	b, err := json.Marshal(map[string]string{
		"requestId":          "$context.requestId",
		"requestTime":        "$context.requestTime",
		"ip":                 "$context.identity.sourceIp",
		"userAgent":          "$context.identity.userAgent",
		"routeKey":           "$context.routeKey",
		"status":             "$context.status",
		"protocol":           "$context.protocol",
		"responseLength":     "$context.responseLength",
		"responseLatency":    "$context.responseLatency",
		"integrationLatency": "$context.integrationLatency",
		"integrationError":   "$context.integrationErrorMessage",
		"authorizerError":    "$context.authorizer.error",
		"jwtSubject":         "$context.authorizer.claims.sub",
		"iamCaller":          "$context.identity.userArn",
	})
	if err != nil {
		panic(err)
	}
	return string(b)
}
