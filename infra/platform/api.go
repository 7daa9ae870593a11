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

// gatewayTimeout is the Lambda's timeout: under API Gateway's fixed 30 s, above the gateway's own
// deadline (SCRAPE_MAX_TIMEOUT, at most 25 s, + SCRAPE_REPLY_GRACE 1.5 s).
const gatewayTimeoutSeconds = 29

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
}

// Routes are the handler's routes; each is served twice, with the JWT authorizer at its path and with
// IAM authorization under MachinePrefix.
// The job routes serve long scrapes as an asynchronous wait (POST /scrape with Prefer: respond-async, then
// GET /jobs/{id}); the smoke check uses them.
var routes = []route{
	{awsapigatewayv2.HttpMethod_POST, "/scrape", true},
	{awsapigatewayv2.HttpMethod_GET, "/status", true},
	{awsapigatewayv2.HttpMethod_GET, "/jobs/{id}", true},
	{awsapigatewayv2.HttpMethod_DELETE, "/jobs/{id}", true},
	{awsapigatewayv2.HttpMethod_GET, "/health", false},
}

func newAPI(st awscdk.Stack, s stage.Settings, net *network, brk *broker, id *identity, art Artifacts) *api {
	sg := securityGroup(st, "GatewaySecurityGroup", "gateway Lambda: AMQPS to the broker, HTTPS to the VPC endpoints", net.vpc, false)
	sg.AddEgressRule(brk.sg, awsec2.Port_Tcp(jsii.Number(5671)), jsii.String("AMQPS to the broker"), jsii.Bool(false))
	sg.AddEgressRule(awsec2.Peer_Ipv4(net.vpc.VpcCidrBlock()), awsec2.Port_Tcp(jsii.Number(443)), jsii.String("HTTPS to the VPC endpoints (Secrets Manager)"), jsii.Bool(false))
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
			"RABBITMQ_SECRET_ARN":    brk.secret.SecretArn(),
			"RABBITMQ_ENDPOINT":      brk.amqpEndpoint,
			"RABBITMQ_TASK_QUEUE":    jsii.String(TaskQueue),
			"SCRAPE_MAX_TIMEOUT":     jsii.String(fmt.Sprintf("%ds", s.API.ScrapeMaxTimeoutSeconds)),
			"SCRAPE_DEFAULT_TIMEOUT": jsii.String(fmt.Sprintf("%ds", defaultTimeout)),
			"LOG_LEVEL":              jsii.String("info"),
		},
	})
	brk.secret.GrantRead(fn, nil)
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
		if r.scoped && len(id.scopes) > 0 {
			opts.AuthorizationScopes = jsii.Strings(id.scopes...)
		}
		httpAPI.AddRoutes(opts)
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
