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
	tests := []struct {
		name  string
		apply func(map[string]any)
		want  string
	}{
		{"unknown field", set("workers.maxTask", 3), `unknown field "maxTask"`},
		{"API Gateway timeout", set("api.scrapeMaxTimeoutSeconds", 29), "1-25"},
		{"stopTimeout above ECS's 120 s", set("workers.drainTimeoutSeconds", 110), "at most 120 s"},
		{"drain shorter than a scrape", set("workers.drainTimeoutSeconds", 10), "shorter than api.scrapeMaxTimeoutSeconds"},
		{"connection budget", set("api.gatewayReservedConcurrency", 90), "exceeds mq.m7g.medium's 100 per node"},
		{"RabbitMQ 4.2 on t3", set("broker.instanceType", "mq.t3.micro"), "not available for RabbitMQ 4.2"},
		{"cluster in two AZs", set("broker.deploymentMode", "CLUSTER_MULTI_AZ"), "list 3 availabilityZones"},
		{"bad deployment mode", set("broker.deploymentMode", "ACTIVE_STANDBY_MULTI_AZ"), "SINGLE_INSTANCE or CLUSTER_MULTI_AZ"},
		{"http issuer", set("api.jwtIssuer", "http://auth.example.com/"), "must be an https URL"},
		{"no audience", set("api.jwtAudiences", []any{}), "1 to 50 audiences"},
		{"Fargate size", set("workers.memoryMiB", 8192), "does not fit workers.cpu 512"},
		{"AZ outside the region", set("availabilityZones", []any{"eu-west-1a", "us-east-1b"}), `"us-east-1b" is not in region`},
		{"no NAT", set("network.natGateways", 0), "workers need outbound internet"},
		{"retention", set("logRetentionDays", 10), "logRetentionDays 10"},
		{"unpinned collector", set("observability.adotImage", "public.ecr.aws/aws-observability/aws-otel-collector:latest"), "pinned tag"},
		{"alarm e-mail", set("observability.alarmEmails", []any{"ops at example.com"}), "not an e-mail address"},
		{"account", set("account", "12345"), "12-digit"},
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
