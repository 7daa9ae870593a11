// Package stage holds the typed per-stage settings of the CDK app (dev, staging, prod), read from the
// "stages" context of cdk.json and validated before anything is synthesized.
package stage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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
	// Account is the AWS account to deploy to; empty means the account of the CLI's credentials.
	Account string `json:"account"`
	Region  string `json:"region"`
	// AvailabilityZones are named explicitly, so synthesis needs no lookups (and no cdk.context.json).
	AvailabilityZones []string `json:"availabilityZones"`
	// TerminationProtection protects the stack from `cdk destroy` and console deletes.
	TerminationProtection bool `json:"terminationProtection"`
	// RetainData keeps the scripts bucket, the broker secret and the log groups when the stack is deleted.
	RetainData       bool `json:"retainData"`
	LogRetentionDays int  `json:"logRetentionDays"`

	Network       Network       `json:"network"`
	Broker        Broker        `json:"broker"`
	API           API           `json:"api"`
	Workers       Workers       `json:"workers"`
	Observability Observability `json:"observability"`
}

// Network is the VPC's shape.
type Network struct {
	CIDR string `json:"cidr"`
	// NATGateways: the workers need outbound internet to scrape; 1 is cheap, one per AZ survives an AZ loss.
	NATGateways int `json:"natGateways"`
}

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
}

// MaintenanceWindow is when Amazon MQ may patch and restart the broker.
type MaintenanceWindow struct {
	DayOfWeek string `json:"dayOfWeek"`
	TimeOfDay string `json:"timeOfDay"`
	TimeZone  string `json:"timeZone"`
}

// API is the HTTP API and the gateway Lambda behind it.
type API struct {
	JWTIssuer    string   `json:"jwtIssuer"`
	JWTAudiences []string `json:"jwtAudiences"`
	// JWTScopes, when set, are required on the user routes (one of them must be in the token's scope).
	JWTScopes          []string `json:"jwtScopes"`
	ThrottleRateLimit  float64  `json:"throttleRateLimit"`
	ThrottleBurstLimit int      `json:"throttleBurstLimit"`
	// ScrapeMaxTimeoutSeconds is the gateway's SCRAPE_MAX_TIMEOUT; API Gateway cuts requests at 30 s.
	ScrapeMaxTimeoutSeconds int `json:"scrapeMaxTimeoutSeconds"`
	// GatewayReservedConcurrency caps the gateway's execution environments, each holding one broker
	// connection, below the broker's connection limit.
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
	// BacklogPerTaskTarget is the target-tracking target for (ready + unacked) / running tasks.
	BacklogPerTaskTarget float64 `json:"backlogPerTaskTarget"`
	// DrainTimeoutSeconds is WORKER_DRAIN_TIMEOUT; ECS stopTimeout is set StopGraceSeconds above it.
	DrainTimeoutSeconds  int `json:"drainTimeoutSeconds"`
	ScriptMemoryLimitMiB int `json:"scriptMemoryLimitMiB"`
}

// Observability is alarms, dashboards and the Prometheus/Grafana side.
type Observability struct {
	AlarmEmails []string `json:"alarmEmails"`
	// Grafana creates an Amazon Managed Grafana workspace (needs IAM Identity Center in the account).
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

// ConnectionBudget is the most broker connections the stage's clients can open: one per gateway
// execution environment, two per worker task (consume and publish), and ConnectionHeadroom for operators
// and rolling deploys.
func (s Settings) ConnectionBudget() int {
	return s.API.GatewayReservedConcurrency + 2*s.Workers.MaxTasks + ConnectionHeadroom
}

// ConnectionHeadroom is kept free on the broker for operators, deploys (old and new tasks overlap) and
// execution environments that linger after a scale-in.
const ConnectionHeadroom = 20

var (
	accountRE  = regexp.MustCompile(`^[0-9]{12}$`)
	timeRE     = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)
	imageTagRE = regexp.MustCompile(`^[a-z0-9./_-]+:[A-Za-z0-9._-]+(@sha256:[a-f0-9]{64})?$`)
	nameRE     = regexp.MustCompile(`^[a-z][a-z0-9]{1,15}$`)
	days       = []string{"MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"}
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
	if s.Account != "" && !accountRE.MatchString(s.Account) {
		fail("account %q is not a 12-digit AWS account id (leave it empty to use the CLI's account)", s.Account)
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
	if s.Network.NATGateways < 1 || s.Network.NATGateways > len(s.AvailabilityZones) {
		fail("network.natGateways must be between 1 (workers need outbound internet to scrape) and the number of AZs, got %d", s.Network.NATGateways)
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

	// API.
	a := s.API
	if u, err := url.Parse(a.JWTIssuer); err != nil || u.Scheme != "https" || u.Host == "" {
		fail("api.jwtIssuer %q must be an https URL (API Gateway fetches the issuer's JWKS from it)", a.JWTIssuer)
	}
	if len(a.JWTAudiences) < 1 || len(a.JWTAudiences) > 50 {
		fail("api.jwtAudiences: API Gateway's JWT authorizer needs 1 to 50 audiences, got %d", len(a.JWTAudiences))
	}
	if len(a.JWTScopes) > 10 {
		fail("api.jwtScopes: at most 10 scopes per route, got %d", len(a.JWTScopes))
	}
	if a.ThrottleRateLimit <= 0 || a.ThrottleBurstLimit < 1 {
		fail("api.throttleRateLimit and api.throttleBurstLimit must be positive")
	}
	if a.ScrapeMaxTimeoutSeconds < 1 || a.ScrapeMaxTimeoutSeconds > 25 {
		fail("api.scrapeMaxTimeoutSeconds %d must be 1-25: API Gateway's HTTP API gives up after 30 s", a.ScrapeMaxTimeoutSeconds)
	}
	if a.GatewayReservedConcurrency < 1 {
		fail("api.gatewayReservedConcurrency must be at least 1")
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
	if w.Concurrency < 1 || w.Concurrency > 256 {
		fail("workers.concurrency %d must be 1-256", w.Concurrency)
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
	if w.DrainTimeoutSeconds < 1 || w.StopTimeoutSeconds() > 120 {
		fail("workers.drainTimeoutSeconds %d must be 1-%d: ECS stopTimeout (drain + %d s) is at most 120 s", w.DrainTimeoutSeconds, 120-StopGraceSeconds, StopGraceSeconds)
	}
	if w.DrainTimeoutSeconds > 0 && w.DrainTimeoutSeconds < a.ScrapeMaxTimeoutSeconds {
		fail("workers.drainTimeoutSeconds %d is shorter than api.scrapeMaxTimeoutSeconds %d: scale-in would kill scrapes that could finish", w.DrainTimeoutSeconds, a.ScrapeMaxTimeoutSeconds)
	}
	if w.ScriptMemoryLimitMiB < 0 {
		fail("workers.scriptMemoryLimitMiB must be >= 0 (0 = no limit)")
	}

	// Connections: every gateway environment and worker task holds broker connections.
	if limit := b.ConnectionLimit(); limit > 0 && s.ConnectionBudget() > limit {
		fail("broker connections: api.gatewayReservedConcurrency %d + 2 x workers.maxTasks %d + %d headroom = %d exceeds %s's %d per node",
			a.GatewayReservedConcurrency, w.MaxTasks, ConnectionHeadroom, s.ConnectionBudget(), b.InstanceType, limit)
	}

	// Observability.
	for _, e := range s.Observability.AlarmEmails {
		if _, err := mail.ParseAddress(e); err != nil || strings.ContainsAny(e, "<> ") {
			fail("observability.alarmEmails: %q is not an e-mail address", e)
		}
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

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
