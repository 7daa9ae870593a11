package stage

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cdkStages returns the "stages" context of the repository's cdk.json, decoded as the CDK hands it over.
func cdkStages(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "cdk.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cdk struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(raw, &cdk); err != nil {
		t.Fatal(err)
	}
	return cdk.Context["stages"].(map[string]any)
}

func TestCDKJSONStagesAreValid(t *testing.T) {
	all, err := Parse(cdkStages(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"dev", "staging", "prod"} {
		if _, ok := all[name]; !ok {
			t.Errorf("cdk.json has no stage %q", name)
		}
	}
	// The shape the issue asks for: a single broker in dev, a three-node cluster in prod.
	if all["dev"].Broker.Cluster() || !all["prod"].Broker.Cluster() {
		t.Errorf("dev cluster=%v, prod cluster=%v", all["dev"].Broker.Cluster(), all["prod"].Broker.Cluster())
	}
	for name, s := range all {
		if s.Broker.TaskQueueMaxLength == 0 {
			t.Errorf("%s: the task queue is unbounded (broker.taskQueueMaxLength 0): callers pile up behind a stalled fleet", name)
		}
	}
	if !all["prod"].TerminationProtection || !all["prod"].RetainData {
		t.Error("prod must be termination-protected and keep its data")
	}
	for name, s := range all {
		if s.Workers.StopTimeoutSeconds() <= s.Workers.DrainTimeoutSeconds {
			t.Errorf("%s: stopTimeout %d does not exceed the drain %d", name, s.Workers.StopTimeoutSeconds(), s.Workers.DrainTimeoutSeconds)
		}
	}
}

// mutate returns the dev stage of cdk.json with f applied to its JSON object.
func mutate(t *testing.T, f func(dev map[string]any)) map[string]any {
	t.Helper()
	raw, _ := json.Marshal(cdkStages(t)["dev"])
	var dev map[string]any
	if err := json.Unmarshal(raw, &dev); err != nil {
		t.Fatal(err)
	}
	f(dev)
	return map[string]any{"dev": dev}
}

func TestValidationRefusesBadSettings(t *testing.T) {
	set := func(path string, v any) func(map[string]any) {
		return func(dev map[string]any) {
			keys := strings.Split(path, ".")
			m := dev
			for _, k := range keys[:len(keys)-1] {
				m = m[k].(map[string]any)
			}
			m[keys[len(keys)-1]] = v
		}
	}
	external := func(issuer string, audiences ...any) func(map[string]any) {
		return func(dev map[string]any) {
			dev["identity"] = map[string]any{"provider": "external", "issuer": issuer, "audiences": append([]any{}, audiences...)}
		}
	}
	tests := []struct {
		name  string
		apply func(map[string]any)
		want  string
	}{
		{"unknown field", set("workers.maxTask", 3), `unknown field "maxTask"`},
		{"timeout above an hour", set("api.scrapeMaxTimeoutSeconds", 3601), "1-3600"},
		{"sync window past API Gateway's timeout", set("api.syncWaitSeconds", 29), "1-25"},
		{"retention above a year", set("api.jobRetentionDays", 400), "1-365"},
		{"status setting not a boolean", set("api.statusPublic", "yes"), "statusPublic"},
		{"stopTimeout above ECS's 120 s", set("workers.drainTimeoutSeconds", 110), "at most 120 s"},
		{"drain shorter than a scrape", set("workers.drainTimeoutSeconds", 10), "shorter than the sync window"},
		{"connection budget", set("api.gatewayReservedConcurrency", 90), "exceeds mq.m7g.medium's 100 per node"},
		{"RabbitMQ 4.2 on t3", set("broker.instanceType", "mq.t3.micro"), "not available for RabbitMQ 4.2"},
		{"cluster in two AZs", set("broker.deploymentMode", "CLUSTER_MULTI_AZ"), "list 3 availabilityZones"},
		{"bad deployment mode", set("broker.deploymentMode", "ACTIVE_STANDBY_MULTI_AZ"), "SINGLE_INSTANCE or CLUSTER_MULTI_AZ"},
		{"http issuer", external("http://auth.mycompany.io/", "scraping-api"), "must be an https URL"},
		{"placeholder issuer", external("https://auth.example.com/", "scraping-api"), "is a placeholder"},
		{"no audience", external("https://auth.mycompany.io/"), "1 to 50 audiences"},
		{"issuer with Cognito", set("identity.issuer", "https://auth.mycompany.io/"), "belong to an external provider"},
		{"unknown provider", set("identity.provider", "okta"), `identity.provider "okta"`},
		{"Cognito domain prefix", set("identity.domainPrefix", "my-cognito-pool"), "without aws, amazon or cognito"},
		{"token lifetime", set("identity.accessTokenMinutes", 2), "accessTokenMinutes 2"},
		{"scope the pool lacks", set("api.jwtScopes", []any{"admin"}), "not a scope of the Cognito resource server"},
		{"placeholder alarm e-mail", func(dev map[string]any) {
			set("observability.noAlarmSubscriptions", false)(dev)
			set("observability.alarmEmails", []any{"ops@example.com"})(dev)
		}, "placeholder address"},
		{"alarms reach nobody", set("observability.noAlarmSubscriptions", false), `opt out with "noAlarmSubscriptions": true`},
		{"opt-out with subscriptions", set("observability.alarmTopicArns", []any{"arn:aws:sns:eu-west-1:210987654321:pager"}), "remove one or the other"},
		{"topic ARN", func(dev map[string]any) {
			set("observability.noAlarmSubscriptions", false)(dev)
			set("observability.alarmTopicArns", []any{"arn:aws:sqs:eu-west-1:210987654321:q"})(dev)
		}, "not an SNS topic ARN"},
		{"parameter name", func(dev map[string]any) {
			set("observability.noAlarmSubscriptions", false)(dev)
			set("observability.alarmEmailParameter", "alarm-email")(dev)
		}, "SSM parameter name"},
		{"account left to chance", set("useCallerAccount", false), `"useCallerAccount": true`},
		{"example account", func(dev map[string]any) {
			set("useCallerAccount", false)(dev)
			set("account", "123456789012")(dev)
		}, "example account id"},
		{"public egress with NAT", set("network.natGateways", 1), "must be 0 with workerEgress"},
		{"unknown egress", set("network.workerEgress", "ipv6"), `workerEgress "ipv6"`},
		{"throttle above sustained concurrency", func(dev map[string]any) {
			set("api.gatewayReservedConcurrency", 20)(dev)
			set("api.throttleRateLimit", 20)(dev)
		}, "exceeds what api.gatewayReservedConcurrency 20 sustains at the 25 s sync window (0.8 rps)"},
		{"burst above concurrency", func(dev map[string]any) {
			set("api.gatewayReservedConcurrency", 50)(dev)
			set("api.throttleRateLimit", 1)(dev)
			set("api.throttleBurstLimit", 60)(dev)
		}, "throttleBurstLimit 60 exceeds"},
		{"unreserved throttle above the broker", set("api.throttleRateLimit", 4), "gateway concurrency 100 + 5 x workers.maxTasks 4 + 20 headroom = 140 exceeds mq.m7g.medium's 100"},
		{"negative reservation", set("api.gatewayReservedConcurrency", -1), "0 (none reserved) or more"},
		{"broker generation", set("broker.generation", -1), "broker.generation must be 0-9999"},
		{"Fargate size", set("workers.memoryMiB", 8192), "does not fit workers.cpu 512"},
		{"AZ outside the region", set("availabilityZones", []any{"eu-west-1a", "us-east-1b"}), `"us-east-1b" is not in region`},
		{"no NAT", func(dev map[string]any) {
			set("network.workerEgress", "nat")(dev)
			set("network.natGateways", 0)(dev)
		}, "workers need outbound internet"},
		{"retention", set("logRetentionDays", 10), "logRetentionDays 10"},
		{"unpinned collector", set("observability.adotImage", "public.ecr.aws/aws-observability/aws-otel-collector:latest"), "pinned tag"},
		{"alarm e-mail", set("observability.alarmEmails", []any{"ops at example.com"}), "not an e-mail address"},
		{"account", func(dev map[string]any) {
			set("useCallerAccount", false)(dev)
			set("account", "12345")(dev)
		}, "12-digit"},
		{"min above max", set("workers.minTasks", 9), "minTasks <= maxTasks"},
		{"queue bound", set("broker.taskQueueMaxLength", 5), "taskQueueMaxLength must be 0"},
		{"no capacity provider weight", func(dev map[string]any) {
			set("workers.spotWeight", 0)(dev)
			set("workers.onDemandWeight", 0)(dev)
		}, "not both 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(mutate(t, tt.apply))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v\nwant one containing %q", err, tt.want)
			}
		})
	}
}

func TestValidationReportsEveryProblemAtOnce(t *testing.T) {
	_, err := Parse(mutate(t, func(dev map[string]any) {
		dev["region"] = ""
		dev["api"].(map[string]any)["throttleRateLimit"] = 0
		dev["workers"].(map[string]any)["concurrency"] = 0
	}))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"region is required", "throttleRateLimit", "workers.concurrency 0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestSelect(t *testing.T) {
	all, err := Parse(cdkStages(t))
	if err != nil {
		t.Fatal(err)
	}
	one, err := Select(all, "staging")
	if err != nil || len(one) != 1 || one[0].Name != "staging" {
		t.Fatalf("Select(staging) = %v, %v", one, err)
	}
	every, err := Select(all, "all")
	if err != nil || len(every) != len(all) || every[0].Name != "dev" || every[len(every)-1].Name != "staging" {
		t.Fatalf("Select(all) = %d stages, %v", len(every), err)
	}
	if _, err := Select(all, "qa"); err == nil || !strings.Contains(err.Error(), "dev, prod, staging") {
		t.Fatalf("Select(qa) error = %v", err)
	}
	if _, err := Parse(nil); err == nil {
		t.Fatal("Parse(nil) accepted")
	}
}

// TestCapacityAddsUp: in every stage of cdk.json the API throttle admits no more than the gateway's
// concurrency sustains when every request takes the whole sync window, a burst fits the concurrency, and
// the gateway's and the workers' connections fit the broker's per-node limit. (Validate refuses the same
// things; this test states the arithmetic on the shipped values.)
func TestCapacityAddsUp(t *testing.T) {
	all, err := Parse(cdkStages(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range all {
		a := s.API
		if a.SyncWindowSeconds() != 25 {
			t.Errorf("%s: sync window %d s, want API Gateway's 30 s less the margins: 25", name, a.SyncWindowSeconds())
		}
		if a.ThrottleRateLimit > s.SustainedRPS() {
			t.Errorf("%s: the API admits %g rps but %d gateway environments sustain %.1f rps of %d s scrapes",
				name, a.ThrottleRateLimit, s.GatewayConcurrency(), s.SustainedRPS(), a.SyncWindowSeconds())
		}
		if a.GatewayReservedConcurrency > 0 && a.ThrottleBurstLimit > a.GatewayReservedConcurrency {
			t.Errorf("%s: burst %d above the reserved concurrency %d", name, a.ThrottleBurstLimit, a.GatewayReservedConcurrency)
		}
		if limit := s.Broker.ConnectionLimit(); s.ConnectionBudget() > limit {
			t.Errorf("%s: %d broker connections for a limit of %d per node", name, s.ConnectionBudget(), limit)
		}
		t.Logf("%s: throttle %g rps (burst %d), gateway concurrency %d (reserved %d) sustains %.1f rps; broker connections %d of %d",
			name, a.ThrottleRateLimit, a.ThrottleBurstLimit, s.GatewayConcurrency(), a.GatewayReservedConcurrency, s.SustainedRPS(),
			s.ConnectionBudget(), s.Broker.ConnectionLimit())
	}
	// The three stages share one region: their NAT gateways' Elastic IPs must fit the default quota (5).
	eips := 0
	for _, s := range all {
		eips += s.Network.ElasticIPs()
	}
	if eips > 5 {
		t.Errorf("the stages hold %d Elastic IPs in one region; the default quota is 5", eips)
	}
}

// TestStagesPinWhatMatters: staging and prod name their account, prod's alarms page someone, no stage
// relies on an identity placeholder, and dev's opt-outs are explicit.
func TestStagesPinWhatMatters(t *testing.T) {
	all, err := Parse(cdkStages(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"staging", "prod"} {
		s := all[name]
		if !s.Pinned() || s.Account == "" || s.UseCallerAccount || s.Region == "" {
			t.Errorf("%s: account %q (useCallerAccount %v), region %q: staging and prod pin both", name, s.Account, s.UseCallerAccount, s.Region)
		}
	}
	if p := all["prod"]; !p.Production() || p.Observability.AlarmSubscriptions() == 0 || p.Observability.NoAlarmSubscriptions {
		t.Errorf("prod alarms: %d subscriptions, opted out %v", p.Observability.AlarmSubscriptions(), p.Observability.NoAlarmSubscriptions)
	}
	if d := all["dev"]; !d.UseCallerAccount || !d.Observability.NoAlarmSubscriptions {
		t.Errorf("dev: useCallerAccount %v, noAlarmSubscriptions %v: dev's opt-outs are explicit", d.UseCallerAccount, d.Observability.NoAlarmSubscriptions)
	}
	for name, s := range all {
		if s.Identity.Provider != ProviderCognito {
			t.Errorf("%s: identity %q, want the stage's own Cognito user pool", name, s.Identity.Provider)
		}
		if s.Observability.Grafana {
			t.Errorf("%s: Grafana is on; it is an optional stack, off unless IAM Identity Center is set up", name)
		}
	}

	// What production refuses even when asked.
	mutProd := func(f func(p map[string]any)) error {
		raw, _ := json.Marshal(cdkStages(t)["prod"])
		var p map[string]any
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatal(err)
		}
		f(p)
		_, err := Parse(map[string]any{"prod": p})
		return err
	}
	for what, c := range map[string]struct {
		f    func(p map[string]any)
		want string
	}{
		"opt out of alarms": {func(p map[string]any) {
			o := p["observability"].(map[string]any)
			o["alarmEmailParameter"], o["noAlarmSubscriptions"] = "", true
		}, "production alarms must page someone"},
		"no alarm subscription": {func(p map[string]any) { p["observability"].(map[string]any)["alarmEmailParameter"] = "" }, "production alarms must page someone"},
		"caller's account":      {func(p map[string]any) { p["account"], p["useCallerAccount"] = "", true }, `account is required for stage "prod"`},
		"public worker IPs": {func(p map[string]any) {
			n := p["network"].(map[string]any)
			n["workerEgress"], n["natGateways"] = "publicIp", 0
		}, "the dev option"},
	} {
		if err := mutProd(c.f); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("prod with %s: error %v, want one containing %q", what, err, c.want)
		}
	}
}

// The README's table of stage settings says what cdk.json holds: every row of `workers.` settings (all
// numbers) lists each stage's value as Parse reads it, defaults included.
func TestReadmeWorkerSettingsMatchCDKJSON(t *testing.T) {
	all, err := Parse(cdkStages(t))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	stages := []string{"dev", "staging", "prod"}
	checked := map[string]bool{}
	for line := range strings.Lines(string(readme)) {
		if !strings.HasPrefix(line, "| `workers.") {
			continue
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) < 1+len(stages) {
			t.Fatalf("README row %q: want a cell per stage", line)
		}
		var keys []string
		for _, k := range strings.Split(cells[0], ",") {
			keys = append(keys, strings.TrimPrefix(strings.Trim(strings.TrimSpace(k), "`"), "workers."))
		}
		for i, name := range stages {
			values := strings.Split(cells[1+i], ",")
			if len(values) != len(keys) {
				t.Errorf("README row %v, %s: %d values for %d settings", keys, name, len(values), len(keys))
				continue
			}
			have := workerSettings(t, all[name].Workers)
			for j, k := range keys {
				want, ok := have[k]
				if !ok {
					t.Errorf("README names workers.%s, which the settings do not have", k)
					continue
				}
				var got float64
				if err := json.Unmarshal([]byte(strings.TrimSpace(values[j])), &got); err != nil || got != want {
					t.Errorf("README: workers.%s in %s is %q, cdk.json gives %v", k, name, strings.TrimSpace(values[j]), want)
				}
				checked[k] = true
			}
		}
	}
	for k := range workerSettings(t, all["dev"].Workers) {
		if !checked[k] {
			t.Errorf("the README's stage table has no row for workers.%s", k)
		}
	}
}

// workerSettings are the workers' settings by their cdk.json names, as numbers, with the defaults Parse's
// users apply (capacityUtilizationTarget: UtilizationTarget).
func workerSettings(t *testing.T, w Workers) map[string]float64 {
	t.Helper()
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]float64
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["capacityUtilizationTarget"] = w.UtilizationTarget()
	return m
}
