package platform

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/scrapeplatform/platform/infra/stage"
)

// TestTemplatesPassCloudFormationValidation: the CDK validates every template against CloudFormation's
// schema and rules (cdk.json turns violations into errors); the report must list none.
func TestTemplatesPassCloudFormationValidation(t *testing.T) {
	a := synth(t)
	raw, err := os.ReadFile(filepath.Join(a.outdir, "validation-report.json"))
	if os.IsNotExist(err) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	var report struct {
		PluginReports []struct {
			PluginName string `json:"pluginName"`
			Violations []struct {
				RuleName    string `json:"ruleName"`
				Description string `json:"description"`
			} `json:"violations"`
		} `json:"pluginReports"`
	}
	if err := json.Unmarshal(raw, &report); err != nil {
		t.Fatal(err)
	}
	for _, p := range report.PluginReports {
		for _, v := range p.Violations {
			t.Errorf("%s %s: %s", p.PluginName, v.RuleName, v.Description)
		}
	}
}

// TestResourceCounts pins what each stage provisions.
func TestResourceCounts(t *testing.T) {
	forEachStage(t, func(t *testing.T, s *synthesized) {
		azs := len(s.settings.AvailabilityZones)
		subnetGroups := 3 // public, workers, internal
		if s.settings.Network.WorkerEgress == stage.EgressPublicIP {
			subnetGroups = 2 // the workers use the public subnets
		}
		for typ, n := range map[string]int{
			// gateway, queue depth, the BrokerUsers custom resource's, and CDK's log-retention function (sets the
			// retention of Amazon MQ's own log group)
			"AWS::Lambda::Function":                       4,
			"Custom::BrokerUsers":                         1,
			"Custom::LogRetention":                        1,
			"AWS::AmazonMQ::Broker":                       1,
			"AWS::S3::Bucket":                             3, // scripts, their access logs, results (the job store)
			"AWS::ApiGatewayV2::Api":                      1,
			"AWS::ApiGatewayV2::Route":                    10,
			"AWS::ApiGatewayV2::Authorizer":               1, // JWT; IAM routes need none
			"AWS::ApiGatewayV2::Stage":                    1,
			"AWS::ECS::Cluster":                           1,
			"AWS::ECS::Service":                           1,
			"AWS::ECS::TaskDefinition":                    1,
			"AWS::ApplicationAutoScaling::ScalableTarget": 1,
			"AWS::ApplicationAutoScaling::ScalingPolicy":  2,
			"AWS::CloudWatch::Dashboard":                  1,
			"AWS::CloudWatch::Alarm":                      13, // 12 paging + the scale-from-zero alarm
			"AWS::SNS::Topic":                             1,
			"AWS::SNS::Subscription":                      len(s.settings.Observability.AlarmEmails) + min(1, len(s.settings.Observability.AlarmEmailParameter)),
			"AWS::APS::Workspace":                         1,
			"AWS::Grafana::Workspace":                     0, // its own stack (TestGrafanaStack)
			"AWS::Cognito::UserPool":                      1,
			"AWS::Cognito::UserPoolResourceServer":        1,
			"AWS::Cognito::UserPoolDomain":                1,
			"AWS::Cognito::UserPoolClient":                1,
			"AWS::EC2::VPC":                               1,
			"AWS::EC2::Subnet":                            subnetGroups * azs,
			"AWS::EC2::NatGateway":                        s.settings.Network.NATGateways,
			"AWS::EC2::EIP":                               s.settings.Network.ElasticIPs(),
			"AWS::EC2::VPCEndpoint":                       8,
			"AWS::EC2::FlowLog":                           1,
			"AWS::Events::Rule":                           1,
			"AWS::SecretsManager::Secret":                 5, // broker administrator, the three broker users, webhook signing key
			"AWS::Logs::MetricFilter":                     1,
		} {
			check(t, typ, func() { s.template.ResourceCountIs(jsii.String(typ), jsii.Number(n)) })
		}
	})
}

func TestLambdas(t *testing.T) {
	forEachStage(t, func(t *testing.T, s *synthesized) {
		check(t, "the workload Lambdas and the BrokerUsers function are provided.al2023 on arm64 in the VPC", func() {
			s.template.ResourcePropertiesCountIs(jsii.String("AWS::Lambda::Function"), map[string]any{
				"Runtime":       "provided.al2023",
				"Architectures": []any{"arm64"},
				"Handler":       "bootstrap",
				"VpcConfig":     assertions.Match_ObjectLike(&map[string]any{"SubnetIds": assertions.Match_AnyValue()}),
			}, jsii.Number(3))
		})
		var reserved any = assertions.Match_Absent()
		if r := s.settings.API.GatewayReservedConcurrency; r > 0 {
			reserved = r
		}
		// The Lambda outlives the sync window by a margin to answer 202, within API Gateway's 30 s.
		if sync := s.settings.API.SyncWindowSeconds(); sync+GatewayAnswerMarginSeconds > gatewayTimeoutSeconds || gatewayTimeoutSeconds > 29 || GatewayAnswerMarginSeconds < 3 {
			t.Errorf("Lambda timeout %d s for a %d s sync window (margin %d s)", gatewayTimeoutSeconds, sync, GatewayAnswerMarginSeconds)
		}
		check(t, "gateway", func() {
			s.template.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
				"ReservedConcurrentExecutions": reserved,
				"Timeout":                      29,
				"Environment": map[string]any{"Variables": assertions.Match_ObjectLike(&map[string]any{
					"SCRAPE_SYNC_WAIT":    fmt.Sprintf("%ds", s.settings.API.SyncWindowSeconds()),
					"STATUS_PUBLIC":       fmt.Sprint(s.settings.API.StatusIsPublic()),
					"JOB_STORE_BUCKET":    assertions.Match_AnyValue(),
					"JOB_RETENTION":       fmt.Sprintf("%dh", 24*s.settings.API.JobRetention()),
					"STAGE":               s.settings.Name,
					"AUTH_MODE":           "apigateway",
					"RABBITMQ_TASK_QUEUE": TaskQueue,
					"SCRAPE_MAX_TIMEOUT":  fmt.Sprintf("%ds", s.settings.API.ScrapeMaxTimeoutSeconds),
					"RABBITMQ_SECRET_ARN": assertions.Match_AnyValue(),
					"RABBITMQ_ENDPOINT":   assertions.Match_AnyValue(),
				})},
			})
		})
		check(t, "queue depth", func() {
			s.template.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
				"ReservedConcurrentExecutions": 1,
				"Environment": map[string]any{"Variables": assertions.Match_ObjectLike(&map[string]any{
					"STAGE":                              s.settings.Name,
					"METRIC_NAMESPACE":                   MetricNamespace,
					"RABBITMQ_MANAGEMENT_URL":            assertions.Match_AnyValue(),
					"ECS_CLUSTER":                        assertions.Match_AnyValue(),
					"ECS_SERVICE":                        assertions.Match_AnyValue(),
					"TASK_QUEUE_MAX_LENGTH":              strconv.Itoa(s.settings.Broker.TaskQueueMaxLength),
					"TASK_QUEUE_POLICY_APPLY_TO":         "quorum_queues",
					"RABBITMQ_WEBHOOK_DEAD_LETTER_QUEUE": WebhookDeadLetterQueue,
				})},
			})
			s.template.HasResourceProperties(jsii.String("AWS::Events::Rule"), map[string]any{"ScheduleExpression": "rate(1 minute)"})
		})
		// The broker password reaches no Lambda as plain text: no RABBITMQ_URL, no dynamic reference.
		for id, fn := range s.resources("AWS::Lambda::Function") {
			env := compact(props(fn)["Environment"])
			if strings.Contains(env, "RABBITMQ_URL") || strings.Contains(env, "resolve:secretsmanager") || strings.Contains(env, "password") {
				t.Errorf("%s: environment exposes broker credentials: %s", id, env)
			}
		}
	})
}

func TestAPIRoutesAreAllAuthorized(t *testing.T) {
	forEachStage(t, func(t *testing.T, s *synthesized) {
		keys := map[string]string{}
		for id, r := range s.resources("AWS::ApiGatewayV2::Route") {
			p := props(r)
			key, _ := p["RouteKey"].(string)
			auth, _ := p["AuthorizationType"].(string)
			keys[key] = auth
			if auth != "JWT" && auth != "AWS_IAM" && !(key == "GET /status" && auth == "NONE" && s.settings.API.StatusIsPublic()) {
				t.Errorf("route %s (%s) has authorization %q", key, id, auth)
			}
			if auth == "JWT" && p["AuthorizerId"] == nil {
				t.Errorf("JWT route %s has no authorizer", key)
			}
			if strings.HasPrefix(key, "ANY") || strings.Contains(key, "$default") || strings.Contains(key, "{proxy") {
				t.Errorf("catch-all route %s: the API serves exactly the handler's routes", key)
			}
		}
		status := "JWT"
		if s.settings.API.StatusIsPublic() {
			status = "NONE" // the spec's aggregate figures; api.statusPublic false closes it (closedStatusTestStage)
		}
		want := map[string]string{
			"POST /scrape": "JWT", "GET /status": status, "GET /health": "JWT", "GET /jobs/{id}": "JWT", "DELETE /jobs/{id}": "JWT",
			"POST /iam/scrape": "AWS_IAM", "GET /iam/status": "AWS_IAM", "GET /iam/health": "AWS_IAM",
			"GET /iam/jobs/{id}": "AWS_IAM", "DELETE /iam/jobs/{id}": "AWS_IAM",
		}
		for k, v := range want {
			if keys[k] != v {
				t.Errorf("route %s: authorization %q, want %q", k, keys[k], v)
			}
		}
		// Every JWT route but /health requires the pool's scope.
		for _, r := range s.resources("AWS::ApiGatewayV2::Route") {
			p := props(r)
			key := p["RouteKey"].(string)
			if p["AuthorizationType"] != "JWT" {
				continue
			}
			scopes := compact(p["AuthorizationScopes"])
			if key == "GET /health" && p["AuthorizationScopes"] != nil || key != "GET /health" && scopes != `["`+stage.ScrapeScope+`"]` {
				// The job routes (and a closed /status) take exactly /scrape's scope.
				t.Errorf("route %s requires scopes %s", key, scopes)
			}
		}
		// The issuer is the stage's own user pool, the audience its machine client.
		_, authz := s.one(t, "AWS::ApiGatewayV2::Authorizer")
		jwtConf := props(authz)["JwtConfiguration"]
		if props(authz)["AuthorizerType"] != "JWT" || !contains(props(authz)["IdentitySource"], "$request.header.Authorization") ||
			!contains(jwtConf, `"Issuer":{"Fn::GetAtt":["UserPool`, `"ProviderURL"]}`, `"Audience":[{"Ref":"UserPoolMachineClient`) {
			t.Errorf("JWT authorizer %s, want the user pool's issuer and its machine client as the audience", compact(props(authz)))
		}
		check(t, "$default stage with throttling and JSON access logs", func() {
			s.template.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Stage"), map[string]any{
				"StageName":  "$default",
				"AutoDeploy": true,
				"DefaultRouteSettings": map[string]any{
					"ThrottlingRateLimit":  s.settings.API.ThrottleRateLimit,
					"ThrottlingBurstLimit": s.settings.API.ThrottleBurstLimit,
				},
				"AccessLogSettings": map[string]any{
					"DestinationArn": assertions.Match_AnyValue(),
					"Format":         assertions.Match_StringLikeRegexp(jsii.String(`"requestId":"\$context.requestId"`)),
				},
			})
		})
		check(t, "Lambda proxy integration, payload 2.0, under API Gateway's 30 s", func() {
			s.template.HasResourceProperties(jsii.String("AWS::ApiGatewayV2::Integration"), map[string]any{
				"IntegrationType":      "AWS_PROXY",
				"PayloadFormatVersion": "2.0",
				"TimeoutInMillis":      29000,
			})
		})
	})
}

func TestBroker(t *testing.T) {
	forEachStage(t, func(t *testing.T, s *synthesized) {
		_, b := s.one(t, "AWS::AmazonMQ::Broker")
		p := props(b)
		wantMode, wantSubnets := "SINGLE_INSTANCE", 1
		if s.settings.Name == "prod" {
			wantMode, wantSubnets = "CLUSTER_MULTI_AZ", 3
		}
		if s.settings.Name == "dev" && p["DeploymentMode"] != "SINGLE_INSTANCE" {
			t.Errorf("dev broker is %v, want a single instance", p["DeploymentMode"])
		}
		if p["DeploymentMode"] != wantMode {
			t.Errorf("deployment mode %v, want %s", p["DeploymentMode"], wantMode)
		}
		if n := len(p["SubnetIds"].([]any)); n != wantSubnets {
			t.Errorf("%d subnets, want %d", n, wantSubnets)
		}
		for k, v := range map[string]any{"EngineType": "RABBITMQ", "PubliclyAccessible": false, "AutoMinorVersionUpgrade": true,
			"EngineVersion": s.settings.Broker.EngineVersion, "HostInstanceType": s.settings.Broker.InstanceType, "BrokerName": BrokerName(s.settings)} {
			if p[k] != v {
				t.Errorf("%s = %v, want %v", k, p[k], v)
			}
		}
		// Prod keeps its broker on deletion and on replacement (drained, then deleted by hand).
		wantPolicy := "Delete"
		if s.settings.RetainData {
			wantPolicy = "Retain"
		}
		if b["DeletionPolicy"] != wantPolicy || b["UpdateReplacePolicy"] != wantPolicy {
			t.Errorf("broker DeletionPolicy %v, UpdateReplacePolicy %v, want %s", b["DeletionPolicy"], b["UpdateReplacePolicy"], wantPolicy)
		}
		// Amazon MQ's own log group gets the stage's retention.
		_, lr := s.one(t, "Custom::LogRetention")
		if !contains(props(lr)["LogGroupName"], "/aws/amazonmq/broker/", `"Fn::GetAtt":["Broker","Id"]`, "/general") ||
			props(lr)["RetentionInDays"] != float64(s.settings.LogRetentionDays) {
			t.Errorf("broker log retention %s, want %d days on /aws/amazonmq/broker/<id>/general", compact(props(lr)), s.settings.LogRetentionDays)
		}
		if !contains(p["Logs"], `"General":true`) {
			t.Errorf("general logs are off: %s", compact(p["Logs"]))
		}
		if !contains(p["MaintenanceWindowStartTime"], s.settings.Broker.MaintenanceWindow.DayOfWeek, s.settings.Broker.MaintenanceWindow.TimeOfDay) {
			t.Errorf("maintenance window %s", compact(p["MaintenanceWindowStartTime"]))
		}
		users := compact(p["Users"])
		if !strings.Contains(users, "{{resolve:secretsmanager:") || strings.Count(users, "resolve:secretsmanager") != 2 {
			t.Errorf("broker user is not taken from Secrets Manager by dynamic reference: %s", users)
		}
		check(t, "generated password", func() {
			s.template.HasResourceProperties(jsii.String("AWS::SecretsManager::Secret"), map[string]any{
				"GenerateSecretString": assertions.Match_ObjectLike(&map[string]any{
					"GenerateStringKey": "password", "PasswordLength": 32, "ExcludePunctuation": true,
				}),
			})
		})

		// AMQPS and the management API only, from the four security groups that need them; no CIDR.
		sgID := ref(p["SecurityGroups"].([]any)[0])
		var ports []string
		for _, r := range s.resources("AWS::EC2::SecurityGroupIngress") {
			ip := props(r)
			if ref(ip["GroupId"]) != sgID {
				continue
			}
			if ip["CidrIp"] != nil || ip["SourceSecurityGroupId"] == nil {
				t.Errorf("broker ingress not from a security group: %s", compact(ip))
			}
			ports = append(ports, fmt.Sprint(ip["FromPort"], "-", ip["ToPort"]))
		}
		slices.Sort(ports)
		if want := []string{"443-443", "443-443", "5671-5671", "5671-5671"}; !slices.Equal(ports, want) {
			t.Errorf("broker ingress ports %v, want %v (AMQPS from gateway and workers, HTTPS from queue depth and BrokerUsers)", ports, want)
		}
		sg := s.resources("AWS::EC2::SecurityGroup")[sgID]
		if ingress := props(sg)["SecurityGroupIngress"]; ingress != nil {
			t.Errorf("broker security group has inline ingress %s", compact(ingress))
		}
	})
}

func TestScriptsBucket(t *testing.T) {
	forEachStage(t, func(t *testing.T, s *synthesized) {
		check(t, "versioned, encrypted, private, logged", func() {
			s.template.HasResourceProperties(jsii.String("AWS::S3::Bucket"), map[string]any{
				"VersioningConfiguration": map[string]any{"Status": "Enabled"},
				"BucketEncryption":        assertions.Match_AnyValue(),
				"PublicAccessBlockConfiguration": map[string]any{
					"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
				},
				"LoggingConfiguration": assertions.Match_ObjectLike(&map[string]any{"DestinationBucketName": assertions.Match_AnyValue()}),
			})
		})
		check(t, "every bucket blocks public access", func() {
			s.template.AllResourcesProperties(jsii.String("AWS::S3::Bucket"), map[string]any{
				"PublicAccessBlockConfiguration": map[string]any{
					"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
				},
			})
		})
		for id, pol := range s.resources("AWS::S3::BucketPolicy") {
			doc := compact(props(pol)["PolicyDocument"])
			if !strings.Contains(doc, `"aws:SecureTransport":"false"`) || !strings.Contains(doc, `"Effect":"Deny"`) {
				t.Errorf("%s does not enforce TLS: %s", id, doc)
			}
		}
		// The scripts bucket's policy refuses the workers every write.
		var deniesWorkers bool
		for _, pol := range s.resources("AWS::S3::BucketPolicy") {
			doc := compact(props(pol)["PolicyDocument"])
			if strings.Contains(doc, `"Sid":"WorkersReadOnly"`) && strings.Contains(doc, "s3:PutObject*") && strings.Contains(doc, "s3:DeleteObject*") && strings.Contains(doc, "WorkerTaskTaskRole") {
				deniesWorkers = true
			}
		}
		if !deniesWorkers {
			t.Error("no bucket policy statement denies the worker task role writes")
		}
		// Server access logs are delivered by the logging service, under a policy scoped to the scripts bucket.
		var logDelivery bool
		for _, pol := range s.resources("AWS::S3::BucketPolicy") {
			logDelivery = logDelivery || contains(props(pol)["PolicyDocument"], `"Service":"logging.s3.amazonaws.com"`, "ScriptsBucket", "/scripts-bucket/*")
		}
		if !logDelivery {
			t.Error("the access-log bucket does not admit the S3 logging service for the scripts bucket")
		}
	})
}

func TestWorkers(t *testing.T) {
	forEachStage(t, func(t *testing.T, s *synthesized) {
		w := s.settings.Workers
		publicIP := "DISABLED"
		if s.settings.Network.WorkerEgress == stage.EgressPublicIP {
			publicIP = "ENABLED"
		}
		check(t, "service: FARGATE and FARGATE_SPOT, its subnets, circuit breaker", func() {
			s.template.HasResourceProperties(jsii.String("AWS::ECS::Service"), map[string]any{
				"CapacityProviderStrategy": []any{
					map[string]any{"CapacityProvider": "FARGATE", "Base": w.OnDemandBase, "Weight": w.OnDemandWeight},
					map[string]any{"CapacityProvider": "FARGATE_SPOT", "Weight": w.SpotWeight},
				},
				"NetworkConfiguration": map[string]any{"AwsvpcConfiguration": assertions.Match_ObjectLike(&map[string]any{"AssignPublicIp": publicIP})},
				"DeploymentConfiguration": assertions.Match_ObjectLike(&map[string]any{
					"DeploymentCircuitBreaker": map[string]any{"Enable": true, "Rollback": true},
				}),
			})
			s.template.HasResourceProperties(jsii.String("AWS::ECS::ClusterCapacityProviderAssociations"), map[string]any{
				"CapacityProviders": assertions.Match_ArrayWith(&[]any{"FARGATE", "FARGATE_SPOT"}),
			})
		})
		// The service waits for the cluster's capacity providers (a known creation race otherwise).
		assocID, _ := s.one(t, "AWS::ECS::ClusterCapacityProviderAssociations")
		_, svc := s.one(t, "AWS::ECS::Service")
		if !contains(svc["DependsOn"], `"`+assocID+`"`) {
			t.Errorf("the worker service does not depend on %s: DependsOn %s", assocID, compact(svc["DependsOn"]))
		}
		// The workers' security group admits nothing, whichever subnets they are in.
		for _, sg := range s.resources("AWS::EC2::SecurityGroup") {
			if contains(props(sg)["GroupDescription"], "worker tasks") && props(sg)["SecurityGroupIngress"] != nil {
				t.Errorf("worker security group admits %s", compact(props(sg)["SecurityGroupIngress"]))
			}
		}
		_, td := s.one(t, "AWS::ECS::TaskDefinition")
		p := props(td)
		if !contains(p["RuntimePlatform"], `"CpuArchitecture":"X86_64"`) {
			t.Errorf("task is not x86_64 (Fargate Spot needs it): %s", compact(p["RuntimePlatform"]))
		}
		if p["Cpu"] != fmt.Sprint(w.CPU) || p["Memory"] != fmt.Sprint(w.MemoryMiB) {
			t.Errorf("task size %v/%v, want %d/%d", p["Cpu"], p["Memory"], w.CPU, w.MemoryMiB)
		}
		containers := map[string]map[string]any{}
		for _, c := range p["ContainerDefinitions"].([]any) {
			cd := c.(map[string]any)
			containers[cd["Name"].(string)] = cd
		}
		worker, adot := containers["worker"], containers["adot-collector"]
		if worker == nil || adot == nil || len(containers) != 2 {
			t.Fatalf("containers %v, want worker and adot-collector", slices.Collect(mapsKeys(containers)))
		}
		env := map[string]string{}
		for _, e := range worker["Environment"].([]any) {
			kv := e.(map[string]any)
			if v, ok := kv["Value"].(string); ok {
				env[kv["Name"].(string)] = v
			} else {
				env[kv["Name"].(string)] = "<token>"
			}
		}
		for k, v := range map[string]string{
			"SCRIPT_REPOSITORY_TYPE": "s3", "S3_PREFIX": ScriptsPrefix, "S3_REGION": s.settings.Region, "S3_BUCKET_NAME": "<token>",
			"RABBITMQ_ENDPOINT": "<token>", "RABBITMQ_TASK_QUEUE": TaskQueue, "WORKER_METRICS_ADDR": ":9100",
			"WORKER_CONCURRENCY": fmt.Sprint(w.Concurrency), "WORKER_DRAIN_TIMEOUT": fmt.Sprintf("%ds", w.DrainTimeoutSeconds),
			"SCRIPT_UID_RANGE": ScriptUIDRange,
		} {
			if env[k] != v {
				t.Errorf("worker %s = %q, want %q", k, env[k], v)
			}
		}
		// Root in the container for the per-script uids (the stronger containment test/docker measured).
		if worker["User"] != "0" {
			t.Errorf("worker container user %v, want 0 (root, scripts as uids of SCRIPT_UID_RANGE)", worker["User"])
		}
		if _, ok := env["RABBITMQ_URL"]; ok {
			t.Error("worker environment carries RABBITMQ_URL (with the password)")
		}
		if !contains(worker["Secrets"], "RABBITMQ_USERNAME", "RABBITMQ_PASSWORD", ":password::", ":username::") {
			t.Errorf("broker credentials are not injected from Secrets Manager: %s", compact(worker["Secrets"]))
		}
		// stopTimeout must outlast the worker's drain (WORKER_DRAIN_TIMEOUT) and stay within ECS's 120 s.
		stop := int(worker["StopTimeout"].(float64))
		if stop <= w.DrainTimeoutSeconds || stop > 120 {
			t.Errorf("stopTimeout %d s for a %d s drain", stop, w.DrainTimeoutSeconds)
		}
		if worker["Essential"] != true || !contains(worker["HealthCheck"], "/healthz") || !contains(worker["LogConfiguration"], `"awslogs"`) {
			t.Errorf("worker container: essential %v, health check %s, logs %s", worker["Essential"], compact(worker["HealthCheck"]), compact(worker["LogConfiguration"]))
		}
		if adot["Essential"] != false || !contains(adot["Environment"], "AOT_CONFIG_CONTENT", "remote_write", "127.0.0.1:9100") ||
			!strings.HasPrefix(adot["Image"].(string), "public.ecr.aws/aws-observability/aws-otel-collector:") {
			t.Errorf("ADOT sidecar: %s", compact(adot))
		}

		// The job store and the webhook key: the workers only.
		for k, v := range map[string]string{"JOB_STORE_BUCKET": "<token>", "JOB_RETENTION": fmt.Sprintf("%dh", 24*s.settings.API.JobRetention())} {
			if env[k] != v {
				t.Errorf("worker %s = %q, want %q", k, env[k], v)
			}
		}
		if !contains(worker["Secrets"], `"Name":"`+WebhookSecretVariable+`"`, "WebhookSecret") {
			t.Errorf("the webhook secret is not injected from Secrets Manager: %s", compact(worker["Secrets"]))
		}
		// Task role: read the scripts, remote-write metrics, the job store (TestJobStore); nothing else.
		for id, pol := range s.resources("AWS::IAM::Policy") {
			if !contains(props(pol)["Roles"], "WorkerTaskTaskRole") {
				continue
			}
			var actions []string
			for _, st := range props(pol)["PolicyDocument"].(map[string]any)["Statement"].([]any) {
				switch a := st.(map[string]any)["Action"].(type) {
				case string:
					actions = append(actions, a)
				case []any:
					for _, x := range a {
						actions = append(actions, x.(string))
					}
				}
			}
			slices.Sort(actions)
			if want := []string{"aps:RemoteWrite", "s3:GetBucket*", "s3:GetObject", "s3:GetObject*", "s3:List*", "s3:ListBucket", "s3:PutObject"}; !slices.Equal(actions, want) {
				t.Errorf("%s: task role actions %v, want %v", id, actions, want)
			}
		}
	})
}

// TestJobStore: the results bucket is private, encrypted, TLS only, unversioned, with the lifecycle the job
// store's doc promises; the gateway and the workers get exactly their prefixes, and nobody may delete.
func TestJobStore(t *testing.T) {
	forEachStage(t, func(t *testing.T, s *synthesized) {
		id, bucket := "", map[string]any(nil)
		for rid, b := range s.resources("AWS::S3::Bucket") {
			if strings.HasPrefix(rid, "ResultsBucket") {
				id, bucket = rid, b
			}
		}
		if bucket == nil {
			t.Fatal("no results bucket")
		}
		p := props(bucket)
		if p["VersioningConfiguration"] != nil {
			t.Errorf("results bucket is versioned: %s", compact(p["VersioningConfiguration"]))
		}
		if !contains(p["BucketEncryption"], `"SSEAlgorithm":"AES256"`) || !contains(p["LoggingConfiguration"], "results-bucket/") {
			t.Errorf("results bucket: encryption %s, logs %s", compact(p["BucketEncryption"]), compact(p["LoggingConfiguration"]))
		}
		days := float64(s.settings.API.JobRetention())
		want := map[string]float64{JobsPrefix: days, ResultsPrefix: days, IdempotencyPrefix: IdempotencyDays}
		rules := p["LifecycleConfiguration"].(map[string]any)["Rules"].([]any)
		for _, r := range rules {
			rule := r.(map[string]any)
			prefix, _ := rule["Prefix"].(string)
			if d, ok := want[prefix]; ok {
				if rule["ExpirationInDays"] != d || rule["Status"] != "Enabled" {
					t.Errorf("lifecycle rule for %s: %s, want expiry after %g days", prefix, compact(rule), d)
				}
				delete(want, prefix)
			}
		}
		if len(want) > 0 {
			t.Errorf("no lifecycle rule for %v: %s", want, compact(rules))
		}
		var tls, noDelete int
		for _, pol := range s.resources("AWS::S3::BucketPolicy") {
			if !contains(props(pol)["Bucket"], id) {
				continue
			}
			doc := compact(props(pol)["PolicyDocument"])
			if strings.Contains(doc, `"aws:SecureTransport":"false"`) {
				tls++
			}
			noDelete += strings.Count(doc, "NoDelete")
		}
		if tls != 1 || noDelete != 2 {
			t.Errorf("results bucket policy: TLS enforced %d, delete denied to %d roles (want the gateway and the workers)", tls, noDelete)
		}

		// Least privilege: object actions by prefix, per role.
		grants := map[string]map[string][]string{} // role -> action -> resources
		for _, pol := range s.resources("AWS::IAM::Policy") {
			role := compact(props(pol)["Roles"])
			for _, st := range props(pol)["PolicyDocument"].(map[string]any)["Statement"].([]any) {
				stm := st.(map[string]any)
				res := compact(stm["Resource"])
				if !strings.Contains(res, id) {
					continue
				}
				actions := fmt.Sprint(stm["Action"])
				if grants[role] == nil {
					grants[role] = map[string][]string{}
				}
				for _, prefix := range []string{JobsPrefix, ResultsPrefix, IdempotencyPrefix} {
					if strings.Contains(res, "/"+prefix+"*") {
						grants[role][actions] = append(grants[role][actions], prefix)
					}
				}
				if strings.Contains(actions, "Delete") || strings.Contains(actions, "*") {
					t.Errorf("%s may %s on the results bucket", role, actions)
				}
			}
		}
		var gateway, workers map[string][]string
		for role, g := range grants {
			switch {
			case strings.Contains(role, "GatewayServiceRole"):
				gateway = g
			case strings.Contains(role, "WorkerTaskTaskRole"):
				workers = g
			default:
				t.Errorf("%s has access to the results bucket: %v", role, g)
			}
		}
		for who, c := range map[string]struct {
			got      map[string][]string
			get, put []string
		}{
			"gateway": {gateway, []string{JobsPrefix, ResultsPrefix, IdempotencyPrefix}, []string{JobsPrefix, IdempotencyPrefix}},
			"workers": {workers, []string{JobsPrefix, ResultsPrefix}, []string{JobsPrefix, ResultsPrefix}},
		} {
			if !slices.Equal(c.got["s3:GetObject"], c.get) || !slices.Equal(c.got["s3:PutObject"], c.put) || len(c.got) != 2 {
				t.Errorf("%s: object grants %v, want GetObject on %v and PutObject on %v only", who, c.got, c.get, c.put)
			}
		}

		// The webhook key reaches the workers only: no Lambda has it.
		for fid, fn := range s.resources("AWS::Lambda::Function") {
			if contains(props(fn)["Environment"], "WebhookSecret") || contains(props(fn)["Environment"], WebhookSecretVariable) {
				t.Errorf("%s gets the webhook secret", fid)
			}
		}
		secretID := ""
		for sid := range s.resources("AWS::SecretsManager::Secret") {
			if strings.HasPrefix(sid, "WebhookSecret") {
				secretID = sid
			}
		}
		for pid, pol := range s.resources("AWS::IAM::Policy") {
			if contains(props(pol)["PolicyDocument"], secretID) && !contains(props(pol)["Roles"], "WorkerTaskExecutionRole") {
				t.Errorf("%s may read the webhook secret: roles %s", pid, compact(props(pol)["Roles"]))
			}
		}
	})
}

func TestScaling(t *testing.T) {
	forEachStage(t, func(t *testing.T, s *synthesized) {
		w := s.settings.Workers
		check(t, "scalable target", func() {
			s.template.HasResourceProperties(jsii.String("AWS::ApplicationAutoScaling::ScalableTarget"), map[string]any{
				"ServiceNamespace": "ecs", "ScalableDimension": "ecs:service:DesiredCount",
				"MinCapacity": w.MinTasks, "MaxCapacity": w.MaxTasks,
			})
		})
		check(t, "target tracking on the workers' capacity utilisation", func() {
			s.template.HasResourceProperties(jsii.String("AWS::ApplicationAutoScaling::ScalingPolicy"), map[string]any{
				"PolicyType": "TargetTrackingScaling",
				"TargetTrackingScalingPolicyConfiguration": assertions.Match_ObjectLike(&map[string]any{
					"TargetValue": w.UtilizationTarget(),
					"CustomizedMetricSpecification": map[string]any{
						"Namespace": MetricNamespace, "MetricName": "CapacityUtilization", "Statistic": "Average",
						"Dimensions": assertions.Match_ArrayWith(&[]any{map[string]any{"Name": "Stage", "Value": s.settings.Name}}),
					},
				}),
			})
		})
		check(t, "step policy scales up from zero", func() {
			s.template.HasResourceProperties(jsii.String("AWS::ApplicationAutoScaling::ScalingPolicy"), map[string]any{
				"PolicyType": "StepScaling",
				"StepScalingPolicyConfiguration": assertions.Match_ObjectLike(&map[string]any{
					"AdjustmentType":  "ChangeInCapacity",
					"StepAdjustments": []any{map[string]any{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}},
				}),
			})
		})
		// The step policy's alarm fires on "messages wait and no task is wanted".
		var found bool
		for _, al := range s.resources("AWS::CloudWatch::Alarm") {
			p := props(al)
			if contains(p["AlarmActions"], "ScaleFromZero") {
				found = true
				if !contains(p["Metrics"], ScaleFromZeroExpression, "DesiredTasks", "ReadyMessages", "DeadLetterMessages") || p["Threshold"] != 1.0 {
					t.Errorf("scale-from-zero alarm: %s", compact(p))
				}
			}
		}
		if !found {
			t.Error("no alarm triggers the scale-from-zero step policy")
		}
	})
}

func TestAlarmsNotifyTheTopic(t *testing.T) {
	forEachStage(t, func(t *testing.T, s *synthesized) {
		topicID, topic := s.one(t, "AWS::SNS::Topic")
		if props(topic)["KmsMasterKeyId"] == nil {
			t.Error("alarm topic is not encrypted")
		}
		descriptions := map[string]bool{}
		paging := 0
		for id, al := range s.resources("AWS::CloudWatch::Alarm") {
			p := props(al)
			if contains(p["AlarmActions"], "ScaleFromZero") {
				continue
			}
			paging++
			descriptions[p["AlarmDescription"].(string)] = true
			if !contains(p["AlarmActions"], topicID) || !contains(p["OKActions"], topicID) {
				t.Errorf("alarm %s does not notify the topic: %s", id, compact(p["AlarmActions"]))
			}
		}
		if paging != 12 {
			t.Errorf("%d paging alarms, want 12", paging)
		}
		for _, about := range []string{"5xx", "gateway Lambda failed", "reserved concurrency", "queue-depth", "dead-letter", "Backlog per task",
			"no worker task", "memory", "memory or disk alarm", "connections", "Webhook deliveries"} {
			var ok bool
			for d := range descriptions {
				ok = ok || strings.Contains(d, about)
			}
			if !ok {
				t.Errorf("no alarm about %q", about)
			}
		}
		// Subscriptions: the settings' e-mails and the SSM-held address; prod pages someone.
		subs := s.resources("AWS::SNS::Subscription")
		o := s.settings.Observability
		if want := len(o.AlarmEmails) + min(1, len(o.AlarmEmailParameter)); len(subs) != want {
			t.Errorf("%d subscriptions, want %d", len(subs), want)
		}
		for id, sub := range subs {
			if props(sub)["Protocol"] != "email" || !contains(props(sub)["TopicArn"], topicID) {
				t.Errorf("subscription %s: %s", id, compact(props(sub)))
			}
		}
		if o.AlarmEmailParameter != "" && !contains(subs, "{{resolve:ssm:"+o.AlarmEmailParameter+"}}") {
			t.Errorf("no subscription resolves %s", o.AlarmEmailParameter)
		}
		if s.settings.Production() && len(subs)+len(o.AlarmTopicArns) == 0 {
			t.Error("production alarms reach nobody")
		}
		// The dead-letter alarm counts new dead letters, not the queue's depth.
		var deadLetters bool
		for _, al := range s.resources("AWS::CloudWatch::Alarm") {
			p := props(al)
			if !strings.Contains(fmt.Sprint(p["AlarmDescription"]), "dead-letter") {
				continue
			}
			deadLetters = true
			if !contains(p["Metrics"], DeadLetterRateExpression, "DeadLetterMessages") || p["Threshold"] != 0.0 ||
				p["ComparisonOperator"] != "GreaterThanThreshold" || p["EvaluationPeriods"] != float64(DeadLetterWindowMinutes) || p["DatapointsToAlarm"] != 1.0 {
				t.Errorf("dead-letter alarm does not fire on a rate of new dead letters: %s", compact(p))
			}
		}
		if !deadLetters {
			t.Error("no dead-letter alarm")
		}
		// The webhook dead-letter alarm: new dead letters of <task>.webhooks.dead, as the queue-depth Lambda
		// publishes them, the same rate rule as the task queue's.
		var webhooks bool
		for _, al := range s.resources("AWS::CloudWatch::Alarm") {
			p := props(al)
			if !strings.Contains(fmt.Sprint(p["AlarmDescription"]), "Webhook deliveries") {
				continue
			}
			webhooks = true
			if !contains(p["Metrics"], WebhookDeadLetterRateExpression, "DeadLetterMessages", `"Value":"`+WebhookDeadLetterQueue+`"`) || p["Threshold"] != 0.0 ||
				p["ComparisonOperator"] != "GreaterThanThreshold" || p["EvaluationPeriods"] != float64(DeadLetterWindowMinutes) || p["DatapointsToAlarm"] != 1.0 {
				t.Errorf("webhook dead-letter alarm: %s", compact(p))
			}
		}
		if !webhooks {
			t.Error("no webhook dead-letter alarm")
		}
	})
}

func TestDashboardShowsTheSystem(t *testing.T) {
	forEachStage(t, func(t *testing.T, s *synthesized) {
		_, d := s.one(t, "AWS::CloudWatch::Dashboard")
		body := compact(props(d)["DashboardBody"])
		for _, m := range []string{
			`\"Count\"`, `\"5xx\"`, `\"Latency\"`, // API
			`\"Errors\"`, `\"Throttles\"`, `\"Duration\"`, // Lambda
			`\"ConnectionCount\"`, `\"ChannelCount\"`, "BrokerMemoryUsedPercent", // broker
			"ReadyMessages", "UnackedMessages", "DeadLetterMessages", "BacklogPerTask", "RunningTasks", // queue, workers
			ScrapeOutcomeMetric, `\"cancelled\"`, // scrape and job outcomes
			JobsAcceptedMetric, `\"async\"`, WebhookDeadLetterQueue, // jobs: sync vs async, webhook dead letters
		} {
			if !strings.Contains(body, m) {
				t.Errorf("dashboard lacks %s", m)
			}
		}
	})
}

func TestNetwork(t *testing.T) {
	forEachStage(t, func(t *testing.T, s *synthesized) {
		var services []string
		for _, ep := range s.resources("AWS::EC2::VPCEndpoint") {
			p := props(ep)
			name := compact(p["ServiceName"])
			for _, svc := range []string{"s3", "secretsmanager", "ecr.api", "ecr.dkr", "logs", "monitoring", "ecs", "aps-workspaces"} {
				if strings.Contains(name, "."+svc+`"`) {
					services = append(services, svc)
				}
			}
			if p["VpcEndpointType"] == "Interface" && p["PrivateDnsEnabled"] != true {
				t.Errorf("endpoint %s without private DNS", name)
			}
		}
		slices.Sort(services)
		if want := []string{"aps-workspaces", "ecr.api", "ecr.dkr", "ecs", "logs", "monitoring", "s3", "secretsmanager"}; !slices.Equal(services, want) {
			t.Errorf("VPC endpoints %v, want %v", services, want)
		}
		// Only the NAT gateways' subnets are public, and nothing launches with a public IP.
		for id, sn := range s.resources("AWS::EC2::Subnet") {
			if props(sn)["MapPublicIpOnLaunch"] == true {
				t.Errorf("subnet %s maps public IPs", id)
			}
		}
	})
}

// TestGrafanaStack: Grafana never sits in the platform stack (a missing IAM Identity Center must not roll
// back the broker); where a stage turns it on it is a stack of its own that reads the platform's workspace.
func TestGrafanaStack(t *testing.T) {
	var seen bool
	forEachStage(t, func(t *testing.T, s *synthesized) {
		if n := len(s.resources("AWS::Grafana::Workspace")) + len(s.resources("AWS::IAM::Role")) - len(without(s.resources("AWS::IAM::Role"), "GrafanaRole")); n != 0 {
			t.Errorf("the platform stack holds %d Grafana resources", n)
		}
		if !s.settings.Observability.Grafana {
			if s.grafana != nil {
				t.Error("a Grafana stack although observability.grafana is off")
			}
			return
		}
		seen = true
		g := &synthesized{json: s.grafana}
		_, ws := g.one(t, "AWS::Grafana::Workspace")
		p := props(ws)
		if !slices.Equal(toStrings(p["DataSources"]), []string{"PROMETHEUS", "CLOUDWATCH"}) || p["PermissionType"] != "CUSTOMER_MANAGED" || p["RoleArn"] == nil ||
			!slices.Equal(toStrings(p["AuthenticationProviders"]), []string{"AWS_SSO"}) {
			t.Errorf("Grafana workspace %s", compact(p))
		}
		var readsPrometheus, readsCloudWatch bool
		for _, pol := range g.resources("AWS::IAM::Policy") {
			if !contains(props(pol)["Roles"], "GrafanaRole") {
				continue
			}
			// The platform's workspace, through a cross-stack reference (no literal ARN, no wildcard).
			readsPrometheus = contains(pol, "aps:QueryMetrics") && !contains(pol, `"Resource":"*"},{"Action":["aps:QueryMetrics`)
			readsCloudWatch = contains(pol, "cloudwatch:GetMetricData", "logs:StartQuery")
		}
		if !readsPrometheus || !readsCloudWatch {
			t.Errorf("Grafana role reads the platform's Prometheus %v, CloudWatch %v", readsPrometheus, readsCloudWatch)
		}
	})
	if !seen {
		t.Errorf("no stage synthesized its Grafana stack (the tests turn it on in %s)", grafanaTestStage)
	}
}

// without returns the resources whose logical id does not start with prefix.
func without(rs map[string]map[string]any, prefix string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range rs {
		if !strings.HasPrefix(id, prefix) {
			out[id] = r
		}
	}
	return out
}

// TestIdentity: each stage provisions its own issuer: a user pool without self sign-up, a resource server
// with the scrape scope, a domain for the token endpoint and a client-credentials app client; and no
// template anywhere names a placeholder identity provider.
func TestIdentity(t *testing.T) {
	forEachStage(t, func(t *testing.T, s *synthesized) {
		_, pool := s.one(t, "AWS::Cognito::UserPool")
		if !contains(props(pool)["AdminCreateUserConfig"], `"AllowAdminCreateUserOnly":true`) {
			t.Errorf("user pool allows self sign-up: %s", compact(props(pool)["AdminCreateUserConfig"]))
		}
		_, rs := s.one(t, "AWS::Cognito::UserPoolResourceServer")
		if props(rs)["Identifier"] != stage.ResourceServer || !contains(props(rs)["Scopes"], `"ScopeName":"scrape"`) {
			t.Errorf("resource server %s", compact(props(rs)))
		}
		_, client := s.one(t, "AWS::Cognito::UserPoolClient")
		cp := props(client)
		if !slices.Equal(toStrings(cp["AllowedOAuthFlows"]), []string{"client_credentials"}) || cp["GenerateSecret"] != true ||
			cp["AllowedOAuthFlowsUserPoolClient"] != true || !contains(cp["AllowedOAuthScopes"], "/scrape") {
			t.Errorf("machine client %s, want the client-credentials grant with a secret and the scrape scope", compact(cp))
		}
		_, domain := s.one(t, "AWS::Cognito::UserPoolDomain")
		if !contains(props(domain)["Domain"], "scraping-"+s.settings.Name+"-") {
			t.Errorf("user pool domain %s", compact(props(domain)))
		}
		outputs := s.json["Outputs"].(map[string]any)
		for _, o := range []string{"UserPoolId", "MachineClientId", "TokenUrl", "JwtIssuer", "JwtScopes"} {
			if outputs[o] == nil {
				t.Errorf("no output %s", o)
			}
		}
		if !contains(outputs["TokenUrl"], "/oauth2/token") {
			t.Errorf("TokenUrl %s", compact(outputs["TokenUrl"]))
		}
		for _, tmpl := range []map[string]any{s.json, s.grafana} {
			if j := compact(tmpl); strings.Contains(j, "example.com") || strings.Contains(j, "example.org") {
				t.Error("a template names an example.com/example.org placeholder")
			}
		}
	})
}

// TestLogRetention: every log group of the stack expires: the stack's own, and Amazon MQ's through the
// log-retention resource.
func TestLogRetention(t *testing.T) {
	forEachStage(t, func(t *testing.T, s *synthesized) {
		groups := s.resources("AWS::Logs::LogGroup")
		if len(groups) < 5 {
			t.Errorf("%d log groups, want at least flow logs, gateway, queue depth, API access logs, workers", len(groups))
		}
		for id, g := range groups {
			if props(g)["RetentionInDays"] != float64(s.settings.LogRetentionDays) {
				t.Errorf("log group %s keeps logs %v days, want %d", id, props(g)["RetentionInDays"], s.settings.LogRetentionDays)
			}
		}
		for id, r := range s.resources("Custom::LogRetention") {
			if props(r)["RetentionInDays"] != float64(s.settings.LogRetentionDays) {
				t.Errorf("%s sets %v days", id, props(r)["RetentionInDays"])
			}
		}
		// Every workload Lambda writes to a log group with a retention. (CDK's log-retention function sets a
		// one-day retention on its own log group when it runs.)
		for id, fn := range s.resources("AWS::Lambda::Function") {
			if strings.HasPrefix(id, "LogRetention") {
				continue
			}
			if props(fn)["LoggingConfig"] == nil {
				t.Errorf("Lambda %s logs to an implicit log group without retention", id)
			}
		}
	})
}

// TestNagSuppressionsCarryReasons: every suppression in the templates names its rule and explains itself
// in a sentence of its own (not a shared boilerplate).
func TestNagSuppressionsCarryReasons(t *testing.T) {
	forEachStage(t, func(t *testing.T, s *synthesized) {
		count := 0
		for id, r := range s.json["Resources"].(map[string]any) {
			md, _ := r.(map[string]any)["Metadata"].(map[string]any)
			nag, _ := md["cdk_nag"].(map[string]any)
			rules, _ := nag["rules_to_suppress"].([]any)
			for _, x := range rules {
				rule := x.(map[string]any)
				count++
				ruleID, _ := rule["id"].(string)
				reason, _ := rule["reason"].(string)
				if !strings.HasPrefix(ruleID, "AwsSolutions-") && ruleID != "CdkNagValidationFailure" {
					t.Errorf("%s: suppression of %q", id, ruleID)
				}
				// cdk-nag stores a reason with non-ASCII characters base64-encoded, unreadable in the template.
				if len(reason) < 80 || !strings.Contains(reason, " ") {
					t.Errorf("%s: suppression of %s needs a readable reason of a sentence or more (plain ASCII): %q", id, ruleID, reason)
				}
			}
		}
		if count == 0 {
			t.Error("no suppressions found in the template metadata (did the check stop reading them?)")
		}
	})
}

// ref returns the logical id a {"Ref": id} or {"Fn::GetAtt": [id, attr]} points at.
func ref(v any) string {
	m, _ := v.(map[string]any)
	if r, ok := m["Ref"].(string); ok {
		return r
	}
	if ga, ok := m["Fn::GetAtt"].([]any); ok && len(ga) > 0 {
		return ga[0].(string)
	}
	return ""
}

func toStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestOutputs: the outputs make smoke and make publish-scripts read, and the ARN to grant machine clients.
func TestOutputs(t *testing.T) {
	forEachStage(t, func(t *testing.T, s *synthesized) {
		outputs, _ := s.json["Outputs"].(map[string]any)
		for _, name := range []string{"ApiUrl", "Region", "ScriptsBucketName", "ApiIamRoutesArn", "DashboardName", "BrokerSecretArn", "BrokerName",
			"ResultsBucketName", "WebhookSecretArn"} {
			if _, ok := outputs[name]; !ok {
				t.Errorf("no output %s", name)
			}
		}
		if r := outputs["Region"].(map[string]any)["Value"]; r != s.settings.Region {
			t.Errorf("Region output %v, want %s", r, s.settings.Region)
		}
		if arn := compact(outputs["ApiIamRoutesArn"]); !strings.Contains(arn, ":execute-api:") || !strings.Contains(arn, "/*/*/iam/*") {
			t.Errorf("ApiIamRoutesArn %s", arn)
		}
	})
}

// TestBrokerNameFollowsReplacements: the broker's name changes exactly when a setting changes that
// CloudFormation can only apply by replacing the broker, so the replacement gets a free name.
func TestBrokerNameFollowsReplacements(t *testing.T) {
	all, _, err := loadStages()
	if err != nil {
		t.Fatal(err)
	}
	base := all["prod"]
	name := BrokerName(base)
	if !regexp.MustCompile(`^scraping-prod-[0-9a-f]{8}$`).MatchString(name) {
		t.Fatalf("broker name %q", name)
	}
	for what, change := range map[string]func(s *stage.Settings){
		"deployment mode": func(s *stage.Settings) { s.Broker.DeploymentMode = "SINGLE_INSTANCE" },
		"subnets (AZs)":   func(s *stage.Settings) { s.AvailabilityZones = s.AvailabilityZones[:2] },
		"subnets (CIDR)":  func(s *stage.Settings) { s.Network.CIDR = "10.30.0.0/16" },
		"major version":   func(s *stage.Settings) { s.Broker.EngineVersion = "3.13" },
		"generation":      func(s *stage.Settings) { s.Broker.Generation++ },
	} {
		s := base
		s.AvailabilityZones = slices.Clone(base.AvailabilityZones)
		change(&s)
		if BrokerName(s) == name {
			t.Errorf("changing the %s keeps the name %s: the replacement would fail on the name", what, name)
		}
	}
	for what, change := range map[string]func(s *stage.Settings){
		"instance type":      func(s *stage.Settings) { s.Broker.InstanceType = "mq.m7g.xlarge" },
		"maintenance window": func(s *stage.Settings) { s.Broker.MaintenanceWindow.DayOfWeek = "MONDAY" },
		"queue bound":        func(s *stage.Settings) { s.Broker.TaskQueueMaxLength = 10 },
	} {
		s := base
		change(&s)
		if BrokerName(s) != name {
			t.Errorf("changing the %s (in place) renames, and so replaces, the broker", what)
		}
	}
	if len(name) > 50 {
		t.Errorf("broker name %q is longer than Amazon MQ's 50 characters", name)
	}
}
