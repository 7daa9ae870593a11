package observability

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/scrapeplatform/platform/local/stack"
)

// rulesFile is the alert rules every setup loads.
const rulesFile = "local/prometheus/alerts.yml"

// alertRule is one alerting rule as written in the rules file.
type alertRule struct {
	Name, Expr, For string
}

// loadRules reads the alert rules and returns them with the file's YAML tree, which withFor rewrites.
func loadRules(t *testing.T) ([]alertRule, *yaml.Node) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rulesFile))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var parsed struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
				For   string `yaml:"for"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := doc.Decode(&parsed); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var rules []alertRule
	for _, g := range parsed.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				rules = append(rules, alertRule{Name: r.Alert, Expr: r.Expr, For: r.For})
			}
		}
	}
	if len(rules) == 0 {
		t.Fatalf("%s holds no alerting rule", rulesFile)
	}
	return rules, &doc
}

// writeRulesWithFor writes a copy of the rules file into dir in which every alerting rule waits forDur
// instead of its own `for:`, and everything else — the expressions above all — is unchanged. It returns
// the copy's path.
func writeRulesWithFor(t *testing.T, doc *yaml.Node, dir, forDur string) string {
	t.Helper()
	var visit func(n *yaml.Node)
	visit = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			isAlert := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == "alert" {
					isAlert = true
				}
			}
			if isAlert {
				found := false
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == "for" {
						n.Content[i+1].Value, found = forDur, true
					}
				}
				if !found {
					n.Content = append(n.Content,
						&yaml.Node{Kind: yaml.ScalarNode, Value: "for"},
						&yaml.Node{Kind: yaml.ScalarNode, Value: forDur})
				}
				return
			}
		}
		for _, c := range n.Content {
			visit(c)
		}
	}
	visit(doc)
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "alerts.yml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// The copy must say exactly what the original says, `for:` aside.
	var copied struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &copied); err != nil {
		t.Fatal(err)
	}
	orig, _ := loadRules(t)
	i := 0
	for _, g := range copied.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if i >= len(orig) || orig[i].Name != r.Alert || orig[i].Expr != r.Expr {
				t.Fatalf("the test's copy of %s changed rule %s", rulesFile, r.Alert)
			}
			i++
		}
	}
	return path
}

// promtool accepts the rules and the compose stack's Prometheus configuration as written (it checks the
// rule files the configuration names too).
func TestPromtoolAcceptsLocalConfig(t *testing.T) {
	t.Parallel()
	promtool(t, "rules", filepath.Join(repoRoot, rulesFile))
	promtool(t, "config", filepath.Join(repoRoot, "local/prometheus/prometheus.yml"))
}

// Every alert has what an operator needs to act on it.
func TestAlertRulesAreDocumented(t *testing.T) {
	t.Parallel()
	_, doc := loadRules(t)
	var parsed struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := doc.Decode(&parsed); err != nil {
		t.Fatal(err)
	}
	for _, g := range parsed.Groups {
		for _, r := range g.Rules {
			if r.Labels["severity"] == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" || r.For == "" {
				t.Errorf("alert %s needs for, labels.severity, annotations.summary and annotations.description", r.Alert)
			}
		}
	}
}

// The configuration `make run` and this package generate (local/stack) and the compose stack's
// local/prometheus/prometheus.yml scrape the same jobs the same way, and load the same rules, so that the
// dashboards and alerts tested here are the ones compose users get.
func TestProcessAndComposeConfigsAgree(t *testing.T) {
	t.Parallel()
	type scrapeConfig struct {
		JobName     string              `yaml:"job_name"`
		MetricsPath string              `yaml:"metrics_path"`
		Params      map[string][]string `yaml:"params"`
	}
	type promConfig struct {
		RuleFiles     []string       `yaml:"rule_files"`
		ScrapeConfigs []scrapeConfig `yaml:"scrape_configs"`
	}
	jobs := func(c promConfig) map[string]scrapeConfig {
		m := map[string]scrapeConfig{}
		for _, s := range c.ScrapeConfigs {
			if s.MetricsPath == "" {
				s.MetricsPath = "/metrics"
			}
			m[s.JobName] = s
		}
		return m
	}
	var generated, compose promConfig
	gen := stack.PrometheusConfig{Gateways: []string{"g:1"}, Workers: []string{"w:1"}, RabbitMQ: []string{"r:1"},
		RuleFiles: []string{filepath.Join(repoRoot, rulesFile)}}
	if err := yaml.Unmarshal(gen.YAML(), &generated); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "local/prometheus/prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(jobs(generated), jobs(compose)) {
		t.Errorf("scrape jobs differ:\n  make run: %+v\n  compose:  %+v", jobs(generated), jobs(compose))
	}
	for _, want := range []string{stack.JobGateway, stack.JobWorker, stack.JobRabbitMQ, stack.JobRabbitMQQueues} {
		if _, ok := jobs(compose)[want]; !ok {
			t.Errorf("compose's prometheus.yml has no job %q", want)
		}
	}
	if len(compose.RuleFiles) != 1 || filepath.Base(compose.RuleFiles[0]) != filepath.Base(rulesFile) {
		t.Errorf("compose's prometheus.yml loads %q, want %s next to it", compose.RuleFiles, filepath.Base(rulesFile))
	}
	// The generated file is a valid configuration too.
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, gen.YAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	promtool(t, "config", cfgFile)
}
