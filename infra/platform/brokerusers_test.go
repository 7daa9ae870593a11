package platform

import (
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// logicalID returns the logical id of the only resource of typ whose id starts with prefix.
func (s *synthesized) logicalID(t *testing.T, typ, prefix string) string {
	t.Helper()
	var ids []string
	for id := range s.resources(typ) {
		if strings.HasPrefix(id, prefix) {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("want one %s named %s*, found %v", typ, prefix, ids)
	}
	return ids[0]
}

func dependsOn(r map[string]any) []string {
	d, _ := r["DependsOn"].([]any)
	var out []string
	for _, x := range d {
		out = append(out, x.(string))
	}
	return out
}

// TestBrokerUsers: the least-privilege broker users (issue 11). Three generated secrets; the BrokerUsers
// custom resource (its own function) makes the users with the administrator's secret, which no other role
// may read; the gateway, the workers and the queue-depth Lambda each read their own secret only, and are
// created after the users exist.
func TestBrokerUsers(t *testing.T) {
	forEachStage(t, func(t *testing.T, s *synthesized) {
		secrets := map[string]string{} // role → logical id
		for role, c := range map[string]struct{ prefix, user string }{
			"gateway":    {"GatewayBrokerSecret", GatewayBrokerUser},
			"worker":     {"WorkerBrokerSecret", WorkerBrokerUser},
			"monitoring": {"MonitoringBrokerSecret", MonitoringBrokerUser},
		} {
			id := s.logicalID(t, "AWS::SecretsManager::Secret", c.prefix)
			secrets[role] = id
			gen, _ := props(s.resources("AWS::SecretsManager::Secret")[id])["GenerateSecretString"].(map[string]any)
			if gen["SecretStringTemplate"] != `{"username":"`+c.user+`"}` || gen["GenerateStringKey"] != "password" ||
				gen["ExcludePunctuation"] != true || gen["PasswordLength"].(float64) < 32 {
				t.Errorf("%s secret: %s; want username %s and a generated 32+ character password without punctuation", role, compact(gen), c.user)
			}
		}
		admin := s.logicalID(t, "AWS::SecretsManager::Secret", "BrokerSecret")
		fnID := s.logicalID(t, "AWS::Lambda::Function", "BrokerUsersFunction")
		brokerID, _ := s.one(t, "AWS::AmazonMQ::Broker")

		// The custom resource and its properties.
		crID, cr := s.one(t, "Custom::BrokerUsers")
		p := props(cr)
		if ref(p["ServiceToken"]) != fnID || !contains(p["ServiceToken"], `"Arn"`) {
			t.Errorf("ServiceToken %s, want the ARN of %s", compact(p["ServiceToken"]), fnID)
		}
		if ref(p["AdminSecretArn"]) != admin || p["TaskQueue"] != TaskQueue || p["Vhost"] != "/" ||
			!contains(p["ManagementURL"], "https:", `"Fn::GetAtt":["`+brokerID+`","AmqpEndpoints"]`) {
			t.Errorf("custom resource properties %s", compact(p))
		}
		users, _ := p["Users"].([]any)
		var got []string
		for _, u := range users {
			m := u.(map[string]any)
			got = append(got, m["Role"].(string)+"="+ref(m["SecretArn"]))
		}
		if want := []string{"gateway=" + secrets["gateway"], "worker=" + secrets["worker"], "monitoring=" + secrets["monitoring"]}; !slices.Equal(got, want) {
			t.Errorf("Users %v, want %v", got, want)
		}
		// Created after (deleted before) its security group, the broker's and the VPC (endpoints, routes).
		deps := dependsOn(cr)
		for _, prefix := range []string{"BrokerUsersSecurityGroup", "BrokerSecurityGroup", "VpcS3Endpoint", "VpcSecretsManagerEndpoint"} {
			if !slices.ContainsFunc(deps, func(d string) bool { return strings.HasPrefix(d, prefix) }) {
				t.Errorf("custom resource does not depend on %s*: %v", prefix, deps)
			}
		}

		// The function: in the VPC, HTTPS out to the broker, the VPC's endpoints and S3 only.
		fn := props(s.resources("AWS::Lambda::Function")[fnID])
		if fn["Runtime"] != "provided.al2023" || !contains(fn["VpcConfig"], "SubnetIds") || fn["Timeout"].(float64) < 60 {
			t.Errorf("BrokerUsers function %s", compact(fn))
		}
		sgID := ref(fn["VpcConfig"].(map[string]any)["SecurityGroupIds"].([]any)[0])
		egress := props(s.resources("AWS::EC2::SecurityGroup")[sgID])["SecurityGroupEgress"]
		if !contains(egress, `"CidrIp":"0.0.0.0/0"`, `"Fn::GetAtt":["Vpc8378EB38","CidrBlock"]`) || strings.Count(compact(egress), `"FromPort":443`) != 2 {
			t.Errorf("BrokerUsers egress %s, want 443 to the VPC CIDR and to S3", compact(egress))
		}
		toBroker := false
		for _, r := range s.resources("AWS::EC2::SecurityGroupEgress") {
			ep := props(r)
			if ref(ep["GroupId"]) == sgID {
				toBroker = strings.HasPrefix(ref(ep["DestinationSecurityGroupId"]), "BrokerSecurityGroup") && ep["FromPort"] == float64(443) && ep["ToPort"] == float64(443)
			}
		}
		if !toBroker {
			t.Error("BrokerUsers function has no egress 443 to the broker")
		}

		// Who reads which secret: the roles of the policies that name it.
		readers := func(secret string) []string {
			var roles []string
			for _, pol := range s.resources("AWS::IAM::Policy") {
				if !contains(props(pol)["PolicyDocument"], `"`+secret+`"`) {
					continue
				}
				for _, r := range props(pol)["Roles"].([]any) {
					roles = append(roles, ref(r))
				}
			}
			slices.Sort(roles)
			return roles
		}
		hasPrefixes := func(got []string, prefixes ...string) bool {
			if len(got) != len(prefixes) {
				return false
			}
			for _, p := range prefixes {
				if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, p) }) {
					return false
				}
			}
			return true
		}
		for secret, want := range map[string][]string{
			admin:                 {"BrokerUsersFunctionServiceRole"},
			secrets["gateway"]:    {"BrokerUsersFunctionServiceRole", "GatewayServiceRole"},
			secrets["worker"]:     {"BrokerUsersFunctionServiceRole", "WorkerTaskExecutionRole"},
			secrets["monitoring"]: {"BrokerUsersFunctionServiceRole", "QueueDepthServiceRole"},
		} {
			if got := readers(secret); !hasPrefixes(got, want...) {
				t.Errorf("%s is read by %v, want %v only", secret, got, want)
			}
		}

		// Each process references its own secret, and is created after the users.
		gwID := s.logicalID(t, "AWS::Lambda::Function", "Gateway")
		qdID := s.logicalID(t, "AWS::Lambda::Function", "QueueDepth")
		for id, secret := range map[string]string{gwID: secrets["gateway"], qdID: secrets["monitoring"]} {
			r := s.resources("AWS::Lambda::Function")[id]
			if arn := props(r)["Environment"].(map[string]any)["Variables"].(map[string]any)["RABBITMQ_SECRET_ARN"]; ref(arn) != secret {
				t.Errorf("%s: RABBITMQ_SECRET_ARN %s, want %s", id, compact(arn), secret)
			}
			if !slices.Contains(dependsOn(r), crID) {
				t.Errorf("%s does not depend on %s: %v", id, crID, dependsOn(r))
			}
		}
		svcID, svc := s.one(t, "AWS::ECS::Service")
		if !slices.Contains(dependsOn(svc), crID) {
			t.Errorf("%s does not depend on %s: %v", svcID, crID, dependsOn(svc))
		}
		_, task := s.one(t, "AWS::ECS::TaskDefinition")
		for _, c := range props(task)["ContainerDefinitions"].([]any) {
			cd := c.(map[string]any)
			if cd["Name"] != "worker" {
				continue
			}
			for _, sec := range cd["Secrets"].([]any) {
				m := sec.(map[string]any)
				if name := m["Name"]; (name == "RABBITMQ_USERNAME" || name == "RABBITMQ_PASSWORD") && !contains(m["ValueFrom"], `"`+secrets["worker"]+`"`) {
					t.Errorf("worker %s comes from %s, want %s", name, compact(m["ValueFrom"]), secrets["worker"])
				}
			}
		}
		check(t, "the custom resource is deleted with the stack", func() {
			s.template.HasResource(jsii.String("Custom::BrokerUsers"), map[string]any{"DeletionPolicy": "Delete", "Properties": assertions.Match_ObjectLike(&map[string]any{"Vhost": "/"})})
		})
	})
}
