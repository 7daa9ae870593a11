package platform

import (
	"testing"

	"gopkg.in/yaml.v3"
)

// TestADOTConfig parses the collector configuration and checks that its pipeline only names components
// it defines, scrapes the worker's metrics port and writes to the workspace with SigV4.
func TestADOTConfig(t *testing.T) {
	var cfg struct {
		Extensions map[string]any `yaml:"extensions"`
		Receivers  map[string]struct {
			Config struct {
				ScrapeConfigs []struct {
					StaticConfigs []struct {
						Targets []string `yaml:"targets"`
					} `yaml:"static_configs"`
				} `yaml:"scrape_configs"`
			} `yaml:"config"`
		} `yaml:"receivers"`
		Processors map[string]any `yaml:"processors"`
		Exporters  map[string]struct {
			Endpoint string `yaml:"endpoint"`
			Auth     struct {
				Authenticator string `yaml:"authenticator"`
			} `yaml:"auth"`
		} `yaml:"exporters"`
		Service struct {
			Extensions []string `yaml:"extensions"`
			Pipelines  map[string]struct {
				Receivers  []string `yaml:"receivers"`
				Processors []string `yaml:"processors"`
				Exporters  []string `yaml:"exporters"`
			} `yaml:"pipelines"`
		} `yaml:"service"`
	}
	const endpoint = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-123/api/v1/remote_write"
	if err := yaml.Unmarshal([]byte(adotConfig("eu-west-1", endpoint)), &cfg); err != nil {
		t.Fatalf("collector configuration is not YAML: %v", err)
	}
	metrics, ok := cfg.Service.Pipelines["metrics"]
	if !ok {
		t.Fatal("no metrics pipeline")
	}
	has := func(kind string, defined map[string]bool, names []string) {
		for _, n := range names {
			if !defined[n] {
				t.Errorf("pipeline uses %s %q, which is not defined", kind, n)
			}
		}
	}
	keys := func(m any) map[string]bool {
		out := map[string]bool{}
		switch m := m.(type) {
		case map[string]any:
			for k := range m {
				out[k] = true
			}
		}
		return out
	}
	recv := map[string]bool{}
	for k := range cfg.Receivers {
		recv[k] = true
	}
	exp := map[string]bool{}
	for k := range cfg.Exporters {
		exp[k] = true
	}
	has("receiver", recv, metrics.Receivers)
	has("processor", keys(cfg.Processors), metrics.Processors)
	has("exporter", exp, metrics.Exporters)
	has("extension", keys(cfg.Extensions), cfg.Service.Extensions)

	rw := cfg.Exporters["prometheusremotewrite"]
	if rw.Endpoint != endpoint || rw.Auth.Authenticator != "sigv4auth" {
		t.Errorf("remote write to %q with %q", rw.Endpoint, rw.Auth.Authenticator)
	}
	targets := cfg.Receivers["prometheus"].Config.ScrapeConfigs
	if len(targets) != 1 || len(targets[0].StaticConfigs) != 1 || len(targets[0].StaticConfigs[0].Targets) != 1 || targets[0].StaticConfigs[0].Targets[0] != "127.0.0.1:9100" {
		t.Errorf("scrape targets %+v, want the worker's 127.0.0.1:9100", targets)
	}
}
