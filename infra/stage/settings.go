// Package stage holds the typed per-stage settings of the CDK app (dev, staging, prod), read from the
// "stages" context of cdk.json and validated before anything is synthesized.
package stage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Settings are one stage's knobs. Every field is documented in infra/README.md.
type Settings struct {
	// Name is the stage's key in the "stages" context (dev, staging, prod); it is not part of the JSON.
	Name string `json:"-"`
	// Account is the AWS account to deploy to. The CLI then refuses credentials of any other account.
	Account string `json:"account"`
	// UseCallerAccount lets a stage without an Account deploy into the account of the CLI's credentials.
	// Only a stage that is not Pinned (dev) may say so; it has to say so explicitly.
	UseCallerAccount bool   `json:"useCallerAccount"`
	Region           string `json:"region"`
	// AvailabilityZones are named explicitly, so synthesis needs no lookups (and no cdk.context.json).
	AvailabilityZones []string `json:"availabilityZones"`
	// TerminationProtection protects the stack from `cdk destroy` and console deletes.
	TerminationProtection bool `json:"terminationProtection"`
	// RetainData keeps the scripts bucket, the broker secret and the log groups when the stack is deleted.
	RetainData       bool `json:"retainData"`
	LogRetentionDays int  `json:"logRetentionDays"`

	Network       Network       `json:"network"`
	Broker        Broker        `json:"broker"`
	Identity      Identity      `json:"identity"`
	API           API           `json:"api"`
	Workers       Workers       `json:"workers"`
	Observability Observability `json:"observability"`
}

// Network is the VPC's shape.
type Network struct {
	CIDR string `json:"cidr"`
	// WorkerEgress is how the workers reach the web pages scripts fetch: "nat" (private subnets behind
	// NATGateways NAT gateways, one Elastic IP each) or "publicIp" (public subnets, an auto-assigned public
	// IPv4 address per task and no inbound rule; no NAT gateway, no Elastic IP: the dev option).
	WorkerEgress string `json:"workerEgress"`
	// NATGateways (workerEgress "nat"): 1 is cheap, one per AZ survives an AZ loss; 0 with "publicIp".
	NATGateways int `json:"natGateways"`
}

// Worker egress modes (Network.WorkerEgress).
const (
	EgressNAT      = "nat"
	EgressPublicIP = "publicIp"
)

// ElasticIPs is how many Elastic IP addresses the stage holds (one per NAT gateway); the default quota
// is 5 per region and account.
func (n Network) ElasticIPs() int { return n.NATGateways }

// Broker is the Amazon MQ for RabbitMQ broker.
type Broker struct {
	EngineVersion string `json:"engineVersion"`
	InstanceType  string `json:"instanceType"`
	// DeploymentMode is SINGLE_INSTANCE or CLUSTER_MULTI_AZ (three nodes in three AZs).
	DeploymentMode    string            `json:"deploymentMode"`
	MaintenanceWindow MaintenanceWindow `json:"maintenanceWindow"`
	// TaskQueueMaxLength bounds the task queue (backpressure: past it the gateway answers 429). The queue-depth
	// Lambda keeps it on the broker as a reject-publish policy; 0 leaves the broker's policies to the operator.
	TaskQueueMaxLength int `json:"taskQueueMaxLength"`
	// Generation is part of the broker's name. Raising it replaces the broker (CloudFormation creates the
	// new one, switches every client to it, and keeps or deletes the old one by the stage's retainData);
	// see "Replacing the broker" in infra/README.md.
	Generation int `json:"generation"`
}

// MaintenanceWindow is when Amazon MQ may patch and restart the broker.
type MaintenanceWindow struct {
	DayOfWeek string `json:"dayOfWeek"`
	TimeOfDay string `json:"timeOfDay"`
	TimeZone  string `json:"timeZone"`
}

// Identity is who issues the JWTs the API's authorizer accepts.
type Identity struct {
	// Provider is "cognito" (the stack provisions a user pool with a resource server, scopes, a hosted
	// domain for the token endpoint and a machine-to-machine app client) or "external" (Issuer, Audiences).
	Provider string `json:"provider"`
	// DomainPrefix (cognito) is the user pool's domain prefix: the token endpoint is
	// https://<prefix>.auth.<region>.amazoncognito.com/oauth2/token. Prefixes are unique per region across
	// all accounts, so empty means "scraping-<stage>-<account id>".
	DomainPrefix string `json:"domainPrefix"`
	// AccessTokenMinutes (cognito) is the lifetime of an access token, 5-1440.
	AccessTokenMinutes int `json:"accessTokenMinutes"`
	// Issuer and Audiences (external) are the provider's issuer URL and the audiences API Gateway accepts.
	Issuer    string   `json:"issuer"`
	Audiences []string `json:"audiences"`
}

// Identity providers (Identity.Provider).
const (
	ProviderCognito  = "cognito"
	ProviderExternal = "external"
)

// Cognito's resource server and scope the stack provisions: tokens carry the scope "scraping/scrape".
const (
	ResourceServer = "scraping"
	ScrapeScope    = ResourceServer + "/scrape"
)

// API is the HTTP API and the gateway Lambda behind it.
type API struct {
	// JWTScopes, when set, are required on the user routes (one of them must be in the token's scope).
	// With a Cognito identity, empty means the pool's own scope (ScrapeScope).
	JWTScopes          []string `json:"jwtScopes"`
	ThrottleRateLimit  float64  `json:"throttleRateLimit"`
	ThrottleBurstLimit int      `json:"throttleBurstLimit"`
	// ScrapeMaxTimeoutSeconds is the gateway's SCRAPE_MAX_TIMEOUT, the longest timeout a scrape may ask for
	// (1-3600; 900 in cdk.json). A scrape that outlasts the sync window becomes a job (202, then GET /jobs/{id}).
	ScrapeMaxTimeoutSeconds int `json:"scrapeMaxTimeoutSeconds"`
	// SyncWaitSeconds is the gateway's SCRAPE_SYNC_WAIT: how long POST /scrape waits for the result before
	// it answers 202. API Gateway cuts requests at 30 s, so 1-25; 0 means DefaultSyncWaitSeconds.
	SyncWaitSeconds int `json:"syncWaitSeconds"`
	// StatusPublic (STATUS_PUBLIC; default true) serves GET /status without a token (the aggregate figures;
	// the details still need authentication, e.g. on /iam/status). false puts the route behind the JWT
	// authorizer like /scrape.
	StatusPublic *bool `json:"statusPublic"`
	// JobRetentionDays is how long jobs and their results are kept (JOB_RETENTION, and the results bucket's
	// lifecycle rule); 0 means DefaultJobRetentionDays.
	JobRetentionDays int `json:"jobRetentionDays"`
	// GatewayReservedConcurrency caps the gateway's execution environments, each holding one broker
	// connection, below the broker's connection limit, and reserves them out of the account's Lambda
	// concurrency quota (which must keep 100 unreserved). 0 reserves none: the API throttle then bounds the
	// gateway's concurrency (see GatewayConcurrency), within whatever the account's pool has free.
	GatewayReservedConcurrency int `json:"gatewayReservedConcurrency"`
	GatewayMemoryMiB           int `json:"gatewayMemoryMiB"`
}

// Workers is the Fargate worker service and its scaling.
type Workers struct {
	CPU         int `json:"cpu"`
	MemoryMiB   int `json:"memoryMiB"`
	Concurrency int `json:"concurrency"`
	MinTasks    int `json:"minTasks"`
	MaxTasks    int `json:"maxTasks"`
	// OnDemandBase tasks always run on FARGATE; beyond it tasks split OnDemandWeight : SpotWeight.
	OnDemandBase   int `json:"onDemandBase"`
	OnDemandWeight int `json:"onDemandWeight"`
	SpotWeight     int `json:"spotWeight"`
	// BacklogPerTaskTarget bounds the backlog alarm: (ready + unacked) / running tasks above twice it for 10
	// minutes means the service cannot keep up.
	BacklogPerTaskTarget float64 `json:"backlogPerTaskTarget"`
	// CapacityUtilizationTarget is the target-tracking target for (ready + unacked) / the workers' admission
	// capacity (the sum of their consumers' prefetch, which follows their measured load); 0 means
	// DefaultCapacityUtilizationTarget.
	CapacityUtilizationTarget float64 `json:"capacityUtilizationTarget"`
	// DrainTimeoutSeconds is WORKER_DRAIN_TIMEOUT; ECS stopTimeout is set StopGraceSeconds above it.
	DrainTimeoutSeconds  int `json:"drainTimeoutSeconds"`
	ScriptMemoryLimitMiB int `json:"scriptMemoryLimitMiB"`
}

// Observability is alarms, dashboards and the Prometheus/Grafana side.
type Observability struct {
	// AlarmEmails are e-mail subscriptions of the alarm topic (each address must confirm).
	AlarmEmails []string `json:"alarmEmails"`
	// AlarmEmailParameter names an SSM String parameter holding one e-mail address, resolved by
	// CloudFormation at deploy time: the address lives in the account, not in the repository.
	AlarmEmailParameter string `json:"alarmEmailParameter"`
	// AlarmTopicArns are existing SNS topics every alarm notifies too: a pager's or incident tool's topic,
	// or the topic of an AWS Chatbot (Amazon Q Developer in chat applications) channel.
	AlarmTopicArns []string `json:"alarmTopicArns"`
	// NoAlarmSubscriptions opts a stage out of the rule that its alarms reach someone. Production cannot.
	NoAlarmSubscriptions bool `json:"noAlarmSubscriptions"`
	// Grafana adds the separate stack ScrapingGrafana-<stage> with an Amazon Managed Grafana workspace.
	// It needs IAM Identity Center in the account (infra/README.md, Grafana); off by default.
	Grafana bool `json:"grafana"`
	// ADOTImage is the AWS Distro for OpenTelemetry collector image of the worker's metrics sidecar.
	ADOTImage string `json:"adotImage"`
}

// StopGraceSeconds is how much longer than the worker's drain ECS waits before SIGKILL: time to requeue
// killed tasks' messages and close the broker connections after the drain timeout.
const StopGraceSeconds = 15

// StopTimeoutSeconds is the worker container's ECS stopTimeout.
func (w Workers) StopTimeoutSeconds() int { return w.DrainTimeoutSeconds + StopGraceSeconds }

// Cluster reports whether the broker is a three-node cluster.
func (b Broker) Cluster() bool { return b.DeploymentMode == "CLUSTER_MULTI_AZ" }

// connectionLimits are Amazon MQ for RabbitMQ's default connections per node: RabbitMQ 4.2's defaults
// (m7g) and RabbitMQ 3.13's fixed limits. See the sizing guidelines in the Amazon MQ developer guide.
var connectionLimits = map[string]map[string]int{
	"4.2": {"mq.m7g.medium": 100, "mq.m7g.large": 1500, "mq.m7g.xlarge": 3000, "mq.m7g.2xlarge": 6000, "mq.m7g.4xlarge": 12000},
	"3.13": {"mq.t3.micro": 500, "mq.m5.large": 5000, "mq.m5.xlarge": 10000, "mq.m5.2xlarge": 20000, "mq.m5.4xlarge": 40000,
		"mq.m7g.medium": 300, "mq.m7g.large": 5000, "mq.m7g.xlarge": 10000, "mq.m7g.2xlarge": 20000, "mq.m7g.4xlarge": 40000},
}

// ConnectionLimit is the broker's connection limit per node (0 when the combination is unknown).
func (b Broker) ConnectionLimit() int { return connectionLimits[b.EngineVersion][b.InstanceType] }

// WorkerConnections is how many broker connections one worker task opens: consume, publish, lease (long
// jobs), cancel (job cancel notices) and webhooks (the deliverer).
const WorkerConnections = 5

// DefaultCapacityUtilizationTarget is workers.capacityUtilizationTarget's default: scale out when the work
// in the system passes three quarters of what the running workers take in at once.
const DefaultCapacityUtilizationTarget = 0.75

// UtilizationTarget is the target-tracking target (CapacityUtilizationTarget or its default).
func (w Workers) UtilizationTarget() float64 {
	if w.CapacityUtilizationTarget > 0 {
		return w.CapacityUtilizationTarget
	}
	return DefaultCapacityUtilizationTarget
}

// ConnectionBudget is the broker connections the stage's clients open: one per gateway execution
// environment, WorkerConnections per worker task, and ConnectionHeadroom for operators and rolling deploys.
// Not counted: the publisher a gateway environment opens on its first cancel of a job with a callback_url
// (gateway.OutboxCallbacks), rare enough that the headroom covers it.
func (s Settings) ConnectionBudget() int {
	return s.GatewayConcurrency() + WorkerConnections*s.Workers.MaxTasks + ConnectionHeadroom
}

// Defaults of the API settings that may be left out (0 or absent).
const (
	DefaultSyncWaitSeconds  = 25
	DefaultJobRetentionDays = 7
	// MaxScrapeTimeoutSeconds is contract.MaxTimeout (1 h), the longest timeout the gateway accepts.
	MaxScrapeTimeoutSeconds = 3600
	// MaxSyncWaitSeconds keeps the sync window (plus the gateway's margin to answer 202) under API
	// Gateway's 30 s integration limit.
	MaxSyncWaitSeconds = 25
)

// SyncWindowSeconds is how long one request may hold a gateway execution environment: the sync window
// (SCRAPE_SYNC_WAIT), after which the gateway answers 202 and the job goes on without it. A long poll of
// GET /jobs/{id} holds it at most 20 s, less than the window.
func (a API) SyncWindowSeconds() int {
	if a.SyncWaitSeconds == 0 {
		return DefaultSyncWaitSeconds
	}
	return a.SyncWaitSeconds
}

// StatusIsPublic reports whether GET /status is served without a token (statusPublic, default true).
func (a API) StatusIsPublic() bool { return a.StatusPublic == nil || *a.StatusPublic }

// JobRetention is how many days jobs and results are kept.
func (a API) JobRetention() int {
	if a.JobRetentionDays == 0 {
		return DefaultJobRetentionDays
	}
	return a.JobRetentionDays
}

// ThrottleConcurrency is how many gateway environments the API throttle can keep busy when every request
// takes the whole sync window (Little's law: rate x time in the system), or its burst if that is more.
func (a API) ThrottleConcurrency() int {
	return max(a.ThrottleBurstLimit, int(math.Ceil(a.ThrottleRateLimit*float64(a.SyncWindowSeconds()))))
}

// GatewayConcurrency is the most gateway execution environments (and so broker connections) the stage
// runs: the reserved concurrency, or without one what the API throttle lets in.
func (s Settings) GatewayConcurrency() int {
	if s.API.GatewayReservedConcurrency > 0 {
		return s.API.GatewayReservedConcurrency
	}
	return s.API.ThrottleConcurrency()
}

// SustainedRPS is the request rate the gateway's concurrency sustains when every request takes the whole
// sync window (slow scrapes); the API throttle must not admit more.
func (s Settings) SustainedRPS() float64 {
	return float64(s.GatewayConcurrency()) / float64(max(1, s.API.SyncWindowSeconds()))
}

// Pinned reports whether the stage must name its account: staging, prod, and any termination-protected
// stage.
func (s Settings) Pinned() bool {
	return s.Name == "staging" || s.Production()
}

// Production reports whether the stage is production: prod, or any termination-protected stage. Its alarms
// must reach someone.
func (s Settings) Production() bool { return s.Name == "prod" || s.TerminationProtection }

// AlarmSubscriptions is how many destinations the alarms reach besides the stage's own topic.
func (o Observability) AlarmSubscriptions() int {
	n := len(o.AlarmEmails) + len(o.AlarmTopicArns)
	if o.AlarmEmailParameter != "" {
		n++
	}
	return n
}

// RequiredScopes are the scopes the user routes require (one of them must be in the token).
func (s Settings) RequiredScopes() []string {
	if len(s.API.JWTScopes) == 0 && s.Identity.Provider == ProviderCognito {
		return []string{ScrapeScope}
	}
	return s.API.JWTScopes
}

// ConnectionHeadroom is kept free on the broker for operators, deploys (old and new tasks overlap) and
// execution environments that linger after a scale-in.
const ConnectionHeadroom = 20

var (
	accountRE  = regexp.MustCompile(`^[0-9]{12}$`)
	timeRE     = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	imageTagRE = regexp.MustCompile(`^[a-z0-9./_-]+:[A-Za-z0-9._-]+(@sha256:[a-f0-9]{64})?$`)
	nameRE     = regexp.MustCompile(`^[a-z][a-z0-9]{1,15}$`)
	// domainPrefixRE is what Cognito accepts as a domain prefix.
	domainPrefixRE = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)
	topicArnRE     = regexp.MustCompile(`^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$`)
	parameterRE    = regexp.MustCompile(`^/[A-Za-z0-9_.\-/]{1,1000}$`)
	// placeholderAccounts are account ids from documentation and examples.
	placeholderAccounts = []string{"123456789012", "111111111111", "111122223333", "000000000000", "999999999999"}
	days                = []string{"MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"}
	// retentions are the values CloudWatch Logs accepts.
	retentions = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
	// fargateMemory lists the memory sizes (MiB) Fargate allows for each CPU size.
	fargateMemory = map[int][2]int{256: {512, 2048}, 512: {1024, 4096}, 1024: {2048, 8192}, 2048: {4096, 16384}, 4096: {8192, 30720}}
)

// Validate reports every problem of s at once.
func (s Settings) Validate() error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if !nameRE.MatchString(s.Name) {
		fail("stage name %q: lower-case letters and digits, 2-16 characters, starting with a letter", s.Name)
	}
	switch {
	case s.Account != "" && !accountRE.MatchString(s.Account):
		fail("account %q is not a 12-digit AWS account id", s.Account)
	case slices.Contains(placeholderAccounts, s.Account):
		fail("account %s is an example account id: set the stage's real account", s.Account)
	case s.Account != "" && s.UseCallerAccount:
		fail("account %s and useCallerAccount: choose one", s.Account)
	case s.Account == "" && s.Pinned():
		fail("account is required for stage %q: staging and production pin their account, so the CLI refuses credentials of any other", s.Name)
	case s.Account == "" && !s.UseCallerAccount:
		fail("account is empty: set the stage's 12-digit account id, or \"useCallerAccount\": true to deploy into the CLI credentials' account")
	}
	if s.Region == "" {
		fail("region is required")
	}
	if len(s.AvailabilityZones) < 2 {
		fail("availabilityZones: at least 2 are needed, got %d", len(s.AvailabilityZones))
	}
	for _, az := range s.AvailabilityZones {
		if !strings.HasPrefix(az, s.Region) || len(az) != len(s.Region)+1 {
			fail("availability zone %q is not in region %q", az, s.Region)
		}
	}
	if !slices.Contains(retentions, s.LogRetentionDays) {
		fail("logRetentionDays %d is not a value CloudWatch Logs accepts (%v)", s.LogRetentionDays, retentions)
	}

	// Network.
	if _, ipnet, err := net.ParseCIDR(s.Network.CIDR); err != nil || ipnet.IP.To4() == nil {
		fail("network.cidr %q is not an IPv4 CIDR", s.Network.CIDR)
	} else if ones, _ := ipnet.Mask.Size(); ones > 18 {
		fail("network.cidr %q is too small: /18 or larger is needed for the worker subnets (/20 per AZ)", s.Network.CIDR)
	}
	switch s.Network.WorkerEgress {
	case EgressNAT:
		if s.Network.NATGateways < 1 || s.Network.NATGateways > len(s.AvailabilityZones) {
			fail("network.natGateways must be between 1 (workers need outbound internet to scrape) and the number of AZs, got %d", s.Network.NATGateways)
		}
	case EgressPublicIP:
		if s.Network.NATGateways != 0 {
			fail("network.natGateways must be 0 with workerEgress %q (the workers get public IPs instead), got %d", EgressPublicIP, s.Network.NATGateways)
		}
		if s.Production() {
			fail("network.workerEgress %q is the dev option: production workers stay in private subnets behind NAT", EgressPublicIP)
		}
	default:
		fail("network.workerEgress %q must be %q or %q", s.Network.WorkerEgress, EgressNAT, EgressPublicIP)
	}

	// Broker.
	b := s.Broker
	switch b.DeploymentMode {
	case "SINGLE_INSTANCE":
	case "CLUSTER_MULTI_AZ":
		if len(s.AvailabilityZones) < 3 {
			fail("broker.deploymentMode CLUSTER_MULTI_AZ spreads three nodes over three AZs: list 3 availabilityZones")
		}
		if b.InstanceType == "mq.t3.micro" {
			fail("broker.instanceType mq.t3.micro supports SINGLE_INSTANCE only")
		}
	default:
		fail("broker.deploymentMode %q must be SINGLE_INSTANCE or CLUSTER_MULTI_AZ", b.DeploymentMode)
	}
	if _, ok := connectionLimits[b.EngineVersion]; !ok {
		fail("broker.engineVersion %q: supported are 4.2 and 3.13", b.EngineVersion)
	} else if b.ConnectionLimit() == 0 {
		fail("broker.instanceType %q is not available for RabbitMQ %s (4.2 runs on mq.m7g only)", b.InstanceType, b.EngineVersion)
	}
	if !slices.Contains(days, b.MaintenanceWindow.DayOfWeek) {
		fail("broker.maintenanceWindow.dayOfWeek %q must be one of %v", b.MaintenanceWindow.DayOfWeek, days)
	}
	if !timeRE.MatchString(b.MaintenanceWindow.TimeOfDay) {
		fail("broker.maintenanceWindow.timeOfDay %q must be HH:MM (24 h)", b.MaintenanceWindow.TimeOfDay)
	}
	if b.MaintenanceWindow.TimeZone == "" {
		fail("broker.maintenanceWindow.timeZone is required (e.g. UTC)")
	}
	if b.TaskQueueMaxLength != 0 && (b.TaskQueueMaxLength < 10 || b.TaskQueueMaxLength > 10_000_000) {
		fail("broker.taskQueueMaxLength must be 0 (policies managed by hand) or 10-10000000, got %d", b.TaskQueueMaxLength)
	}
	if b.Generation < 0 || b.Generation > 9999 {
		fail("broker.generation must be 0-9999, got %d", b.Generation)
	}

	// Identity.
	id := s.Identity
	switch id.Provider {
	case ProviderCognito:
		if id.Issuer != "" || len(id.Audiences) > 0 {
			fail("identity.issuer and identity.audiences belong to an external provider: the Cognito user pool is the issuer, its app client the audience")
		}
		if id.DomainPrefix != "" && (!domainPrefixRE.MatchString(id.DomainPrefix) || strings.Contains(id.DomainPrefix, "aws") ||
			strings.Contains(id.DomainPrefix, "amazon") || strings.Contains(id.DomainPrefix, "cognito")) {
			fail("identity.domainPrefix %q: lower-case letters, digits and hyphens, at most 63, without aws, amazon or cognito", id.DomainPrefix)
		}
		if id.AccessTokenMinutes < 5 || id.AccessTokenMinutes > 1440 {
			fail("identity.accessTokenMinutes %d must be 5-1440", id.AccessTokenMinutes)
		}
		for _, sc := range s.API.JWTScopes {
			if sc != ScrapeScope {
				fail("api.jwtScopes: %q is not a scope of the Cognito resource server (%s)", sc, ScrapeScope)
			}
		}
	case ProviderExternal:
		if u, err := url.Parse(id.Issuer); err != nil || u.Scheme != "https" || u.Host == "" {
			fail("identity.issuer %q must be an https URL (API Gateway fetches the issuer's JWKS from it)", id.Issuer)
		} else if isPlaceholderHost(u.Hostname()) {
			fail("identity.issuer %q is a placeholder: every JWT route would answer 401; name your provider's issuer or use provider %q", id.Issuer, ProviderCognito)
		}
		if len(id.Audiences) < 1 || len(id.Audiences) > 50 {
			fail("identity.audiences: API Gateway's JWT authorizer needs 1 to 50 audiences, got %d", len(id.Audiences))
		}
		if id.DomainPrefix != "" || id.AccessTokenMinutes != 0 {
			fail("identity.domainPrefix and identity.accessTokenMinutes configure the Cognito user pool: not with provider %q", ProviderExternal)
		}
	default:
		fail("identity.provider %q must be %q (a user pool per stage) or %q (issuer and audiences of your provider)", id.Provider, ProviderCognito, ProviderExternal)
	}

	// API.
	a := s.API
	if len(a.JWTScopes) > 10 {
		fail("api.jwtScopes: at most 10 scopes per route, got %d", len(a.JWTScopes))
	}
	if a.ThrottleRateLimit <= 0 || a.ThrottleBurstLimit < 1 {
		fail("api.throttleRateLimit and api.throttleBurstLimit must be positive")
	}
	if a.ScrapeMaxTimeoutSeconds < 1 || a.ScrapeMaxTimeoutSeconds > MaxScrapeTimeoutSeconds {
		fail("api.scrapeMaxTimeoutSeconds %d must be 1-%d (a scrape longer than the sync window runs as a job)", a.ScrapeMaxTimeoutSeconds, MaxScrapeTimeoutSeconds)
	}
	if a.SyncWaitSeconds < 0 || a.SyncWaitSeconds > MaxSyncWaitSeconds {
		fail("api.syncWaitSeconds %d must be 1-%d (0: %d): API Gateway's HTTP API gives up after 30 s", a.SyncWaitSeconds, MaxSyncWaitSeconds, DefaultSyncWaitSeconds)
	}
	if a.JobRetentionDays < 0 || a.JobRetentionDays > 365 {
		fail("api.jobRetentionDays %d must be 1-365 (0: %d)", a.JobRetentionDays, DefaultJobRetentionDays)
	}
	if a.GatewayReservedConcurrency < 0 {
		fail("api.gatewayReservedConcurrency must be 0 (none reserved) or more, got %d", a.GatewayReservedConcurrency)
	}
	if a.GatewayMemoryMiB < 128 || a.GatewayMemoryMiB > 10240 {
		fail("api.gatewayMemoryMiB %d must be 128-10240", a.GatewayMemoryMiB)
	}

	// Workers.
	w := s.Workers
	if r, ok := fargateMemory[w.CPU]; !ok {
		fail("workers.cpu %d must be a Fargate size: 256, 512, 1024, 2048 or 4096", w.CPU)
	} else if w.MemoryMiB < r[0] || w.MemoryMiB > r[1] || w.MemoryMiB%1024 != 0 && w.MemoryMiB != 512 {
		fail("workers.memoryMiB %d does not fit workers.cpu %d (Fargate allows %d-%d MiB in 1 GiB steps)", w.MemoryMiB, w.CPU, r[0], r[1])
	}
	if w.Concurrency < 1 || w.Concurrency > 4096 {
		fail("workers.concurrency %d (WORKER_CONCURRENCY, the admission ceiling) must be 1-4096", w.Concurrency)
	}
	if w.MinTasks < 0 || w.MaxTasks < 1 || w.MinTasks > w.MaxTasks {
		fail("workers: need 0 <= minTasks <= maxTasks and maxTasks >= 1, got %d..%d", w.MinTasks, w.MaxTasks)
	}
	if w.OnDemandBase < 0 || w.OnDemandBase > w.MaxTasks {
		fail("workers.onDemandBase %d must be between 0 and maxTasks", w.OnDemandBase)
	}
	if w.OnDemandWeight < 0 || w.SpotWeight < 0 || w.OnDemandWeight+w.SpotWeight == 0 {
		fail("workers.onDemandWeight and workers.spotWeight must be >= 0 and not both 0")
	}
	if w.BacklogPerTaskTarget <= 0 {
		fail("workers.backlogPerTaskTarget must be positive")
	} else if w.Concurrency > 0 && w.BacklogPerTaskTarget > float64(4*w.Concurrency) {
		fail("workers.backlogPerTaskTarget %.1f is more than 4x workers.concurrency: tasks would wait in the queue past the API's timeout", w.BacklogPerTaskTarget)
	}
	if w.CapacityUtilizationTarget < 0 || w.CapacityUtilizationTarget > 2 {
		fail("workers.capacityUtilizationTarget %.2f must be between 0 (the default, %.2f) and 2", w.CapacityUtilizationTarget, DefaultCapacityUtilizationTarget)
	}
	if w.DrainTimeoutSeconds < 1 || w.StopTimeoutSeconds() > 120 {
		fail("workers.drainTimeoutSeconds %d must be 1-%d: ECS stopTimeout (drain + %d s) is at most 120 s", w.DrainTimeoutSeconds, 120-StopGraceSeconds, StopGraceSeconds)
	}
	// A drain cannot outlast a job (ECS stops a task within 120 s, jobs run up to an hour): a stopping task's
	// unfinished jobs go back to the queue or their lease runs out, and another task runs them. It must
	// still outlast the sync window, so scale-in does not kill scrapes a caller is waiting for.
	if w.DrainTimeoutSeconds > 0 && w.DrainTimeoutSeconds < a.SyncWindowSeconds() {
		fail("workers.drainTimeoutSeconds %d is shorter than the sync window (api.syncWaitSeconds) %d: scale-in would kill scrapes a caller waits for", w.DrainTimeoutSeconds, a.SyncWindowSeconds())
	}
	if w.ScriptMemoryLimitMiB < 0 {
		fail("workers.scriptMemoryLimitMiB must be >= 0 (0 = no limit)")
	}

	// Capacity. Every request may hold a gateway environment for the whole sync window, so the throttle
	// must not admit more than the reserved concurrency sustains; every gateway environment and worker task
	// holds broker connections, which must fit the broker's limit.
	if r := a.GatewayReservedConcurrency; r > 0 && a.ThrottleRateLimit > 0 {
		if a.ThrottleRateLimit > s.SustainedRPS() {
			fail("capacity: api.throttleRateLimit %g rps exceeds what api.gatewayReservedConcurrency %d sustains at the %d s sync window (%.1f rps): "+
				"lower the throttle or raise the concurrency (and the broker) to at least %d",
				a.ThrottleRateLimit, r, a.SyncWindowSeconds(), s.SustainedRPS(), int(math.Ceil(a.ThrottleRateLimit*float64(a.SyncWindowSeconds()))))
		}
		if a.ThrottleBurstLimit > r {
			fail("capacity: api.throttleBurstLimit %d exceeds api.gatewayReservedConcurrency %d: a burst would be throttled by Lambda (429s the API does not count)",
				a.ThrottleBurstLimit, r)
		}
	}
	if limit := b.ConnectionLimit(); limit > 0 && s.ConnectionBudget() > limit {
		fail("capacity: broker connections: gateway concurrency %d + %d x workers.maxTasks %d + %d headroom = %d exceeds %s's %d per node",
			s.GatewayConcurrency(), WorkerConnections, w.MaxTasks, ConnectionHeadroom, s.ConnectionBudget(), b.InstanceType, limit)
	}

	// Observability.
	o := s.Observability
	for _, e := range o.AlarmEmails {
		if _, err := mail.ParseAddress(e); err != nil || strings.ContainsAny(e, "<> ") {
			fail("observability.alarmEmails: %q is not an e-mail address", e)
		} else if isPlaceholderHost(e[strings.LastIndex(e, "@")+1:]) {
			fail("observability.alarmEmails: %q is a placeholder address: nobody would be paged", e)
		}
	}
	if p := o.AlarmEmailParameter; p != "" && !parameterRE.MatchString(p) {
		fail("observability.alarmEmailParameter %q must be an SSM parameter name starting with /", p)
	}
	for _, arn := range o.AlarmTopicArns {
		if !topicArnRE.MatchString(arn) {
			fail("observability.alarmTopicArns: %q is not an SNS topic ARN", arn)
		} else if slices.Contains(placeholderAccounts, strings.Split(arn, ":")[4]) {
			fail("observability.alarmTopicArns: %q is in an example account", arn)
		}
	}
	switch {
	case o.AlarmSubscriptions() > 0 && o.NoAlarmSubscriptions:
		fail("observability.noAlarmSubscriptions is set but the stage has alarm subscriptions: remove one or the other")
	case o.AlarmSubscriptions() == 0 && s.Production():
		fail("observability: production alarms must page someone: set alarmEmails, alarmEmailParameter or alarmTopicArns (a production stage cannot opt out)")
	case o.AlarmSubscriptions() == 0 && !o.NoAlarmSubscriptions:
		fail("observability: the alarms reach nobody: set alarmEmails, alarmEmailParameter or alarmTopicArns, or opt out with \"noAlarmSubscriptions\": true")
	}
	if !imageTagRE.MatchString(s.Observability.ADOTImage) || strings.HasSuffix(s.Observability.ADOTImage, ":latest") {
		fail("observability.adotImage %q must name a pinned tag (not latest)", s.Observability.ADOTImage)
	}
	if len(errs) > 0 {
		return fmt.Errorf("stage %q:\n%w", s.Name, errors.Join(errs...))
	}
	return nil
}

// Parse decodes the "stages" context value (the JSON object of cdk.json, as the CDK hands it over) into
// validated settings by name. Unknown fields are errors, so a typo cannot silently fall back to a default.
func Parse(raw any) (map[string]Settings, error) {
	if raw == nil {
		return nil, errors.New(`cdk.json has no "stages" context`)
	}
	var buf []byte
	switch v := raw.(type) {
	case string:
		buf = []byte(v)
	case []byte:
		buf = v
	default:
		var err error
		if buf, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("stages context: %w", err)
		}
	}
	var rawStages map[string]json.RawMessage
	if err := json.Unmarshal(buf, &rawStages); err != nil {
		return nil, fmt.Errorf("stages context is not an object of stages: %w", err)
	}
	if len(rawStages) == 0 {
		return nil, errors.New(`the "stages" context defines no stage`)
	}
	out := make(map[string]Settings, len(rawStages))
	var errs []error
	for _, name := range sortedKeys(rawStages) {
		dec := json.NewDecoder(bytes.NewReader(rawStages[name]))
		dec.DisallowUnknownFields()
		var s Settings
		if err := dec.Decode(&s); err != nil {
			errs = append(errs, fmt.Errorf("stage %q: %w", name, err))
			continue
		}
		s.Name = name
		if err := s.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		out[name] = s
	}
	return out, errors.Join(errs...)
}

// Select returns the settings of the stage called name, or every stage (sorted by name) for "all".
func Select(all map[string]Settings, name string) ([]Settings, error) {
	if name == "all" {
		out := make([]Settings, 0, len(all))
		for _, k := range sortedKeys(all) {
			out = append(out, all[k])
		}
		return out, nil
	}
	s, ok := all[name]
	if !ok {
		return nil, fmt.Errorf("unknown stage %q: cdk.json defines %s (or use -c stage=all)", name, strings.Join(sortedKeys(all), ", "))
	}
	return []Settings{s}, nil
}

// isPlaceholderHost reports whether host is a documentation or example domain (RFC 2606 and RFC 6761
// names), which can never issue real tokens or receive real pages.
func isPlaceholderHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	for _, d := range []string{"example.com", "example.org", "example.net", "example", "invalid", "test", "localhost"} {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return strings.Contains(host, "placeholder") || strings.Contains(host, "changeme")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
