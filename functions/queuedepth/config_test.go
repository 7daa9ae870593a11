package queuedepth

import (
	"strings"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	c, err := LoadConfig(env(map[string]string{"STAGE": "dev"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.ManagementURL != "http://127.0.0.1:15672" || c.TaskQueue != "scraping_tasks" || c.DeadLetterQueue != "scraping_tasks.dead" ||
		c.VHost != "/" || c.Namespace != "ScrapingPlatform" || c.Timeout != 10*time.Second || c.MaxLength != 0 || c.PolicyName != "scraping_tasks-bound" ||
		c.PolicyApplyTo != "queues" || c.PolicyPriority != 10 {
		t.Fatalf("defaults: %+v", c)
	}

	c, err = LoadConfig(env(map[string]string{"STAGE": "prod", "RABBITMQ_TASK_QUEUE": "jobs", "RABBITMQ_MANAGEMENT_URL": "https://b-1.mq.eu-west-1.on.aws",
		"ECS_CLUSTER": "c", "ECS_SERVICE": "s", "RABBITMQ_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:x",
		"TASK_QUEUE_MAX_LENGTH": "5000", "TASK_QUEUE_POLICY_APPLY_TO": "quorum_queues"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.DeadLetterQueue != "jobs.dead" || c.Cluster != "c" || c.SecretARN == "" || c.MaxLength != 5000 || c.PolicyName != "jobs-bound" ||
		c.PolicyApplyTo != "quorum_queues" {
		t.Fatalf("AWS settings: %+v", c)
	}

	_, err = LoadConfig(env(map[string]string{"RABBITMQ_MANAGEMENT_URL": "https://u:p@host", "ECS_CLUSTER": "c", "MANAGEMENT_TIMEOUT": "0",
		"TASK_QUEUE_MAX_LENGTH": "-1", "TASK_QUEUE_POLICY_APPLY_TO": "all"}))
	if err == nil {
		t.Fatal("invalid configuration accepted")
	}
	for _, want := range []string{"STAGE", "must not carry credentials", "ECS_CLUSTER and ECS_SERVICE", "MANAGEMENT_TIMEOUT", "TASK_QUEUE_MAX_LENGTH", "TASK_QUEUE_POLICY_APPLY_TO"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "u:p@") {
		t.Errorf("error leaks credentials: %v", err)
	}
}
