package container

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"gopkg.in/yaml.v3"

	"github.com/scrapeplatform/platform/local/stack"

	"github.com/scrapeplatform/platform/shared/brokerusers"
	"github.com/scrapeplatform/platform/shared/proctest"
)

const composeFile = "local/compose.yaml"

// loadCompose reads local/compose.yaml with compose-go, as `docker compose` does: interpolation with the
// environment (defaults for whatever is unset), schema validation, normalization, paths resolved against
// the file's folder.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	dir := filepath.Join(repoRoot, filepath.Dir(composeFile))
	b, err := os.ReadFile(filepath.Join(repoRoot, composeFile))
	if err != nil {
		t.Fatal(err)
	}
	// Only variables a user would set; none of the compose file's settings come from this test's machine.
	env := types.NewMapping(nil)
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(repoRoot, composeFile), Content: b}},
		Environment: env,
	})
	if err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	return p
}

// The topology issue 5 asks for, and what makes each part work.
func TestComposeTopology(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	svc := func(name string) types.ServiceConfig {
		t.Helper()
		s, ok := p.Services[name]
		if !ok {
			t.Fatalf("%s has no service %q", composeFile, name)
		}
		return s
	}
	for _, name := range []string{"rabbitmq", "rabbitmq-2", "rabbitmq-3", "s3", "s3-seed", "gateway", "worker", "prometheus", "grafana"} {
		svc(name)
	}

	for name, s := range p.Services {
		// Images: pinned; built ones come from a Dockerfile of this repository.
		if s.Build != nil {
			df := filepath.Join(s.Build.Context, s.Build.Dockerfile)
			if _, err := os.Stat(df); err != nil {
				t.Errorf("%s: Dockerfile %s: %v", name, df, err)
				continue
			}
			if s.Build.Context != repoRoot {
				t.Errorf("%s: build context %s, want the repository root (the Dockerfiles copy shared/)", name, s.Build.Context)
			}
			if _, ok := targetStage(t, s); !ok {
				t.Errorf("%s: %s has no stage %q", name, s.Build.Dockerfile, s.Build.Target)
			}
		} else if !pinned(s.Image) {
			t.Errorf("%s: image %q is not pinned to a version", name, s.Image)
		}
		// Health: every long-running service has a health check, here or in its image.
		oneShot := s.Restart == types.RestartPolicyNo
		if !oneShot && s.HealthCheck == nil && !imageHasHealthcheck(t, s) {
			t.Errorf("%s: no health check", name)
		}
		// Published ports stay on loopback.
		for _, port := range s.Ports {
			if port.Published != "" && port.HostIP != "127.0.0.1" {
				t.Errorf("%s: port %s is published on %q, not 127.0.0.1", name, port.Published, port.HostIP)
			}
		}
		// Bind mounts point at files of the repository.
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("%s: bind mount source %s: %v", name, v.Source, err)
				}
			}
		}
		// service_healthy waits on something that has a health check.
		for dep, d := range s.DependsOn {
			switch d.Condition {
			case types.ServiceConditionHealthy:
				if ds := p.Services[dep]; ds.HealthCheck == nil && !imageHasHealthcheck(t, ds) {
					t.Errorf("%s waits for %s to be healthy, which has no health check", name, dep)
				}
			case types.ServiceConditionCompletedSuccessfully:
				if p.Services[dep].Restart != types.RestartPolicyNo {
					t.Errorf("%s waits for %s to complete, which restarts", name, dep)
				}
			}
		}
	}

	// Workers scale: no fixed name, no fixed host port, several replicas by default.
	w := svc("worker")
	if w.ContainerName != "" || slices.ContainsFunc(w.Ports, func(p types.ServicePortConfig) bool { return p.Published != "" }) {
		t.Error("worker: container_name or a published port would stop `--scale worker=3`")
	}
	if w.Deploy == nil || w.Deploy.Replicas == nil || *w.Deploy.Replicas < 2 {
		t.Error("worker: want deploy.replicas of 2 or more")
	}
	if w.DependsOn["s3-seed"].Condition != types.ServiceConditionCompletedSuccessfully {
		t.Error("worker: must wait for s3-seed to have published the scripts")
	}
	for _, name := range []string{"gateway", "worker"} {
		if svc(name).DependsOn["rabbitmq"].Condition != types.ServiceConditionHealthy {
			t.Errorf("%s: must wait for a healthy rabbitmq", name)
		}
	}
}

// targetStage returns the stage a built service's image comes from (build.target, else the last one), with
// the commands of the stages it builds on.
func targetStage(t *testing.T, s types.ServiceConfig) (instructions.Stage, bool) {
	t.Helper()
	rel, err := filepath.Rel(repoRoot, filepath.Join(s.Build.Context, s.Build.Dockerfile))
	if err != nil {
		t.Fatal(err)
	}
	p := parseDockerfile(t, rel)
	if s.Build.Target == "" {
		return p.flatten(p.stages[len(p.stages)-1]), true
	}
	for _, st := range p.stages {
		if strings.EqualFold(st.Name, s.Build.Target) {
			return p.flatten(st), true
		}
	}
	return instructions.Stage{}, false
}

// imageHasHealthcheck reports whether a built service's image has a HEALTHCHECK (compose uses it).
func imageHasHealthcheck(t *testing.T, s types.ServiceConfig) bool {
	t.Helper()
	if s.Build == nil {
		return false
	}
	final, ok := targetStage(t, s)
	return ok && slices.ContainsFunc(final.Commands, func(c instructions.Command) bool {
		h, ok := c.(*instructions.HealthCheckCommand)
		return ok && len(h.Health.Test) > 0 && h.Health.Test[0] != "NONE"
	})
}

// The RabbitMQ cluster: three nodes that know each other, share a cookie, and run the management and
// Prometheus plugins.
func TestComposeRabbitMQCluster(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	conf, err := os.ReadFile(filepath.Join(repoRoot, "local/rabbitmq/rabbitmq.conf"))
	if err != nil {
		t.Fatal(err)
	}
	peers := regexp.MustCompile(`(?m)^cluster_formation\.classic_config\.nodes\.\d+\s*=\s*rabbit@(\S+)\s*$`).FindAllStringSubmatch(string(conf), -1)
	var peerHosts []string
	for _, m := range peers {
		peerHosts = append(peerHosts, m[1])
	}
	plugins, err := os.ReadFile(filepath.Join(repoRoot, "local/rabbitmq/enabled_plugins"))
	if err != nil {
		t.Fatal(err)
	}
	for _, pl := range []string{"rabbitmq_management", "rabbitmq_prometheus"} {
		if !strings.Contains(string(plugins), pl) {
			t.Errorf("enabled_plugins lacks %s", pl)
		}
	}
	var nodes []string
	cookie := ""
	for name, s := range p.Services {
		if !strings.HasPrefix(s.Image, "rabbitmq:") || s.Restart == types.RestartPolicyNo {
			continue // not a node (the one-shot rabbitmq-policy job uses the image for rabbitmqctl)
		}
		nodes = append(nodes, name)
		if !strings.Contains(s.Image, "management") {
			t.Errorf("%s: image %s lacks the management plugin", name, s.Image)
		}
		if !slices.Contains(peerHosts, s.Hostname) {
			t.Errorf("%s: hostname %q is not among rabbitmq.conf's cluster nodes %q", name, s.Hostname, peerHosts)
		}
		args := deref(s.Environment["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"])
		if cookie == "" {
			cookie = args
		}
		if args == "" || args != cookie || deref(s.Environment["RABBITMQ_CTL_ERL_ARGS"]) != args {
			t.Errorf("%s: the nodes and their CLI tools must share one Erlang cookie", name)
		}
		mounts := map[string]string{}
		for _, v := range s.Volumes {
			mounts[v.Target] = v.Source
		}
		if mounts["/etc/rabbitmq/enabled_plugins"] == "" || !strings.HasPrefix(mounts["/etc/rabbitmq/conf.d/20-scraping.conf"], filepath.Join(repoRoot, "local/rabbitmq")) {
			t.Errorf("%s: must mount local/rabbitmq's rabbitmq.conf and enabled_plugins", name)
		}
		if mounts["/var/lib/rabbitmq"] == "" {
			t.Errorf("%s: no volume for its data", name)
		}
	}
	if len(nodes) != 3 || len(peerHosts) != 3 {
		t.Errorf("want a 3-node cluster: services %q, rabbitmq.conf peers %q", nodes, peerHosts)
	}
}

// The rabbitmq-policy job bounds exactly the task queue the gateway and workers use, with reject-publish
// (what makes the gateway answer 429), on the first node, with the nodes' cookie; the bound can be set.
func TestComposeBoundsTheTaskQueue(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	job, ok := p.Services["rabbitmq-policy"]
	if !ok {
		t.Fatal("no rabbitmq-policy service")
	}
	node := p.Services["rabbitmq"]
	if job.Restart != types.RestartPolicyNo || job.DependsOn["rabbitmq"].Condition != types.ServiceConditionHealthy {
		t.Error("rabbitmq-policy: must run once, after the first node is healthy")
	}
	if job.Image != node.Image || deref(job.Environment["RABBITMQ_CTL_ERL_ARGS"]) != deref(node.Environment["RABBITMQ_CTL_ERL_ARGS"]) {
		t.Error("rabbitmq-policy: must use the nodes' image and Erlang cookie")
	}
	cmd := []string(job.Command)
	i := slices.Index(cmd, "set_policy")
	if len(cmd) == 0 || cmd[0] != "rabbitmqctl" || i < 0 || len(cmd) < i+3 {
		t.Fatalf("rabbitmq-policy: command %q is not rabbitmqctl set_policy", cmd)
	}
	if n := slices.Index(cmd, "--node"); n < 0 || cmd[n+1] != "rabbit@"+node.Hostname {
		t.Errorf("rabbitmq-policy: command %q does not name node rabbit@%s", cmd, node.Hostname)
	}
	if a := slices.Index(cmd, "--apply-to"); a < 0 || cmd[a+1] != "queues" {
		t.Errorf("rabbitmq-policy: command %q does not apply to queues only", cmd)
	}
	args := cmd[len(cmd)-3:] // name, pattern, definition
	pattern, err := regexp.Compile(args[1])
	if err != nil {
		t.Fatalf("rabbitmq-policy: pattern %q: %v", args[1], err)
	}
	queue := deref(p.Services["gateway"].Environment["RABBITMQ_TASK_QUEUE"])
	if queue == "" || !pattern.MatchString(queue) || pattern.MatchString(queue+".dead") || pattern.MatchString("x"+queue) {
		t.Errorf("rabbitmq-policy: pattern %q must match exactly the task queue %q", args[1], queue)
	}
	var def map[string]any
	if err := json.Unmarshal([]byte(args[2]), &def); err != nil {
		t.Fatalf("rabbitmq-policy: definition %q: %v", args[2], err)
	}
	if def["overflow"] != "reject-publish" || def["max-length"] != float64(1000) {
		t.Errorf("rabbitmq-policy: definition %v, want max-length 1000 (the default) and overflow reject-publish", def)
	}
}

// The gateway and the workers get only variables they know, pointing at services that exist.
func TestComposeApplicationSettings(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	for name, readme := range map[string]string{"gateway": "functions/README.md", "worker": "worker/README.md"} {
		vars := readmeVariables(t, readme)
		for k := range p.Services[name].Environment {
			if !slices.Contains(vars, k) {
				t.Errorf("%s: %s is not in %s's configuration table", name, k, readme)
			}
		}
	}
	env := func(svc, key string) string { return deref(p.Services[svc].Environment[key]) }

	// Both reach the broker's first node.
	for _, name := range []string{"gateway", "worker"} {
		u, err := url.Parse(env(name, "RABBITMQ_URL"))
		if err != nil || u.Hostname() != "rabbitmq" || u.Port() != "5672" {
			t.Errorf("%s: RABBITMQ_URL %q does not point at the rabbitmq service", name, env(name, "RABBITMQ_URL"))
		}
	}
	// The gateway listens where it publishes its port and where Prometheus scrapes it.
	if _, port, _ := net.SplitHostPort(env("gateway", "GATEWAY_ADDR")); port != "8080" {
		t.Errorf("gateway: GATEWAY_ADDR %q, want :8080", env("gateway", "GATEWAY_ADDR"))
	}
	if len(env("gateway", "JWT_SECRET")) < 32 {
		t.Error("gateway: the default JWT_SECRET must be at least 32 characters")
	}
	// Workers read the scripts the seed job published, from the S3 server, with its credentials.
	if env("worker", "SCRIPT_REPOSITORY_TYPE") != "s3" {
		t.Error("worker: SCRIPT_REPOSITORY_TYPE must be s3 (scripts come from the seeded S3 server)")
	}
	// scrapectl (s3-seed) publishes where the workers read, with the same variables.
	for _, k := range []string{"S3_BUCKET_NAME", "S3_PREFIX", "S3_ENDPOINT_URL", "S3_REGION", "S3_ACCESS_KEY", "S3_SECRET_KEY"} {
		if env("worker", k) == "" || env("worker", k) != env("s3-seed", k) {
			t.Errorf("%s: worker %q and s3-seed %q differ", k, env("worker", k), env("s3-seed", k))
		}
	}
	if env("worker", "S3_ACCESS_KEY") != env("s3", "ROOT_ACCESS_KEY") || env("worker", "S3_SECRET_KEY") != env("s3", "ROOT_SECRET_KEY") {
		t.Error("the workers' and the seed job's S3 credentials must be the S3 server's")
	}
	if env("s3", "S3_BUCKET_NAME") != env("worker", "S3_BUCKET_NAME") {
		t.Errorf("the s3 service creates bucket %q, the workers read %q", env("s3", "S3_BUCKET_NAME"), env("worker", "S3_BUCKET_NAME"))
	}
	if u, err := url.Parse(env("worker", "S3_ENDPOINT_URL")); err != nil || u.Hostname() != "s3" ||
		!strings.Contains(strings.Join(p.Services["s3"].Command, " "), "--port :"+u.Port()) {
		t.Errorf("worker: S3_ENDPOINT_URL %q does not point at the s3 service's port (%q)", env("worker", "S3_ENDPOINT_URL"), p.Services["s3"].Command)
	}
	// The job store: one bucket, which the s3 service creates, shared by the gateway and the workers, on the
	// s3 service with its credentials (test/docker runs a job through it).
	bucket := env("gateway", "JOB_STORE_BUCKET")
	if bucket == "" || env("worker", "JOB_STORE_BUCKET") != bucket || env("s3", "JOB_STORE_BUCKET") != bucket ||
		!strings.Contains(strings.Join(p.Services["s3"].Command, " "), `mkdir -p "/data/${S3_BUCKET_NAME}" "/data/${JOB_STORE_BUCKET}"`) {
		t.Errorf("JOB_STORE_BUCKET: gateway %q, worker %q, created by the s3 service %q (%q); want one bucket the s3 service creates",
			bucket, env("worker", "JOB_STORE_BUCKET"), env("s3", "JOB_STORE_BUCKET"), p.Services["s3"].Command)
	}
	for _, k := range []string{"S3_ENDPOINT_URL", "S3_REGION", "S3_ACCESS_KEY", "S3_SECRET_KEY"} {
		if env("gateway", k) == "" || env("gateway", k) != env("worker", k) {
			t.Errorf("%s: the gateway's %q and the workers' %q differ (one job store)", k, env("gateway", k), env("worker", k))
		}
	}
	if _, ok := p.Services["gateway"].DependsOn["s3"]; !ok {
		t.Error("gateway: must depend on the s3 service (its job store)")
	}
	// Admission decides the workers' concurrency (issue 12): no fixed WORKER_CONCURRENCY near the CPU count.
	if v, ok := p.Services["worker"].Environment["WORKER_CONCURRENCY"]; ok {
		t.Errorf("worker: WORKER_CONCURRENCY %q pins the scrapes in flight; leave it to admission (its default ceiling)", deref(v))
	}
	if b := p.Services["s3-seed"].Build; b == nil || !strings.HasSuffix(b.Dockerfile, "worker/Dockerfile") || b.Target != "scrapectl" {
		t.Error("s3-seed: must run scrapectl, built from worker/Dockerfile's scrapectl stage")
	}
	seedScript := ""
	scriptsMounted := false
	for _, v := range p.Services["s3-seed"].Volumes {
		if v.Target == "/seed.sh" {
			seedScript = v.Source
		}
		scriptsMounted = scriptsMounted || (v.Target == "/scripts" && v.Source == filepath.Join(repoRoot, "scripts"))
	}
	if seedScript == "" || !scriptsMounted {
		t.Error("s3-seed: must mount its seed script and the repository's scripts/")
	}
}

// Prometheus scrapes the services where they listen, with the rule file test/observability provokes;
// Grafana gets the datasource and the dashboards test/observability evaluates.
func TestComposeMonitoring(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	mountOf := func(svc, target string) string {
		for _, v := range p.Services[svc].Volumes {
			if v.Target == target {
				return v.Source
			}
		}
		t.Errorf("%s: nothing mounted at %s", svc, target)
		return ""
	}
	if got := mountOf("prometheus", "/etc/prometheus"); got != filepath.Join(repoRoot, "local/prometheus") {
		t.Errorf("prometheus: /etc/prometheus is %s, want local/prometheus", got)
	}
	var cfg struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
			DNSSDConfigs []struct {
				Names []string `yaml:"names"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	readYAML(t, "local/prometheus/prometheus.yml", &cfg)
	// Where each service serves its metrics inside the compose network.
	metricsPort := map[string]string{"gateway": "8080", "worker": "9100"}
	if _, port, _ := net.SplitHostPort(deref(p.Services["worker"].Environment["WORKER_METRICS_ADDR"])); port != metricsPort["worker"] {
		t.Errorf("worker: WORKER_METRICS_ADDR port %q, Prometheus scrapes %s", port, metricsPort["worker"])
	}
	hostnames := map[string]string{}
	for name, s := range p.Services {
		hostnames[name] = name
		if s.Hostname != "" {
			hostnames[s.Hostname] = name
		}
		if strings.HasPrefix(s.Image, "rabbitmq:") && s.Restart != types.RestartPolicyNo { // a node, not a one-shot job
			metricsPort[name] = "15692"
		}
	}
	scraped := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, port, _ := net.SplitHostPort(target)
				svc, ok := hostnames[host]
				if !ok || metricsPort[svc] != port {
					t.Errorf("job %s: target %s is no service's metrics port", sc.JobName, target)
				}
				scraped[svc] = true
			}
		}
		for _, d := range sc.DNSSDConfigs {
			for _, n := range d.Names {
				if svc, ok := hostnames[n]; !ok || metricsPort[svc] != strconv.Itoa(d.Port) {
					t.Errorf("job %s: DNS name %s:%d is no service's metrics port", sc.JobName, n, d.Port)
				}
				scraped[n] = true
			}
		}
	}
	for svc := range metricsPort {
		if !scraped[svc] {
			t.Errorf("Prometheus does not scrape %s", svc)
		}
	}

	// Grafana: provisioning from local/grafana, dashboards where the provider looks, datasource = the
	// prometheus service.
	if got := mountOf("grafana", "/etc/grafana/provisioning"); got != filepath.Join(repoRoot, "local/grafana/provisioning") {
		t.Errorf("grafana: provisioning is %s", got)
	}
	var providers struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "local/grafana/provisioning/dashboards/scraping.yaml", &providers)
	if len(providers.Providers) != 1 || mountOf("grafana", providers.Providers[0].Options.Path) != filepath.Join(repoRoot, "local/grafana/dashboards") {
		t.Errorf("grafana: the dashboard provider's path does not hold local/grafana/dashboards: %+v", providers)
	}
	var ds struct {
		Datasources []struct {
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	readYAML(t, "local/grafana/provisioning/datasources/prometheus.yaml", &ds)
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" || ds.Datasources[0].URL != "http://prometheus:9090" {
		t.Errorf("grafana: datasource %+v, want the prometheus service", ds.Datasources)
	}
	if home := deref(p.Services["grafana"].Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]); home != "" {
		rel := strings.TrimPrefix(home, providers.Providers[0].Options.Path)
		if _, err := os.Stat(filepath.Join(repoRoot, "local/grafana/dashboards", rel)); err != nil {
			t.Errorf("grafana: home dashboard %s: %v", home, err)
		}
	}
}

// readmeVariables returns the variable names in the first column of a README's configuration table.
func readmeVariables(t *testing.T, readme string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, readme))
	if err != nil {
		t.Fatal(err)
	}
	section := string(b)
	if i := strings.Index(section, "## Configuration"); i >= 0 {
		section = section[i:]
		if j := strings.Index(section[3:], "\n## "); j >= 0 {
			section = section[:j+3]
		}
	}
	var vars []string
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.SplitN(line, "|", 3)[1]
		for _, m := range regexp.MustCompile("`([A-Z][A-Z0-9_]*)`").FindAllStringSubmatch(first, -1) {
			vars = append(vars, m[1])
		}
	}
	if len(vars) == 0 {
		t.Fatalf("%s: no configuration table", readme)
	}
	return vars
}

func readYAML(t *testing.T, rel string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// The s3-seed job's script, run here as compose runs it — with the real scrapectl, against a real versitygw
// whose bucket is a folder, as the s3 service makes it — publishes every script of scripts/.
func TestComposeSeedScriptPublishesTheScripts(t *testing.T) {
	t.Parallel()
	p := loadCompose(t)
	env := func(svc, key string) string { return deref(p.Services[svc].Environment[key]) }
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "scrapectl"), "./cmd/scrapectl")
	build.Dir = filepath.Join(repoRoot, "worker")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build scrapectl: %v\n%s", err, out)
	}
	vgw, err := stack.LookVersityGW(os.Getenv("VERSITYGW"), repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	s3, err := stack.StartS3(t.Context(), stack.S3Options{
		Binary: vgw, Addr: proctest.FreeAddr(t), Dir: data, Bucket: env("s3", "S3_BUCKET_NAME"),
		AccessKey: env("s3", "ROOT_ACCESS_KEY"), SecretKey: env("s3", "ROOT_SECRET_KEY"), Region: env("s3-seed", "S3_REGION"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s3.Stop(10 * time.Second) })

	var script string
	for _, v := range p.Services["s3-seed"].Volumes {
		if v.Target == "/seed.sh" {
			script = v.Source
		}
	}
	cmd := exec.Command("/bin/sh", script)
	cmd.Env = []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "SCRIPTS_DIR=" + filepath.Join(repoRoot, "scripts")}
	for k, v := range p.Services["s3-seed"].Environment {
		if k == "S3_ENDPOINT_URL" {
			cmd.Env = append(cmd.Env, k+"="+s3.Endpoint()) // the s3 service, here
		} else {
			cmd.Env = append(cmd.Env, k+"="+deref(v))
		}
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("seed.sh: %v\n%s", err, out)
	}
	dirs, _ := filepath.Glob(filepath.Join(repoRoot, "scripts", "*", "scraper.py"))
	if len(dirs) == 0 {
		t.Fatal("no scripts in scripts/")
	}
	for _, d := range dirs {
		name := filepath.Base(filepath.Dir(d))
		obj := filepath.Join(data, env("s3", "S3_BUCKET_NAME"), env("s3-seed", "S3_PREFIX")+name+".tar.gz")
		if _, err := os.Stat(obj); err != nil {
			t.Errorf("%s was not published: %v", name, err)
		}
	}
}

// The compose stack's broker users (local/rabbitmq/users.sh) have the tags of shared/brokerusers' table,
// and the gateway reads the management API as the status user, which can set no policy, not as the
// queue-depth function's monitoring user (tagged policymaker).
func TestComposeBrokerUsersFollowTheTable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "local/rabbitmq/users.sh"))
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^user (\S+) "\$\(password \w+\)" "([^"]*)"`)
	tags := map[string]string{}
	for _, m := range line.FindAllStringSubmatch(string(b), -1) {
		tags[m[1]] = m[2]
	}
	for name, role := range map[string]brokerusers.Role{"scrape-monitoring": brokerusers.Monitoring, "scrape-status": brokerusers.Status} {
		g, err := brokerusers.For(role, "scraping_tasks")
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.ReplaceAll(g.Tags, ",", " "); tags[name] != want {
			t.Errorf("users.sh tags %s %q; want %q (shared/brokerusers, role %s)", name, tags[name], want, role)
		}
	}
	mgmt := regexp.MustCompile(`printf 'http://([\w-]+):%s@[^']*' "\$\(password \w+\)" > "\$DIR/gateway-management.url"`).FindStringSubmatch(string(b))
	if mgmt == nil || mgmt[1] != "scrape-status" {
		t.Errorf("gateway-management.url is written for %v; want scrape-status", mgmt)
	}
}
