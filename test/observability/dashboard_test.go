package observability

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dashboardDir is where Grafana's provisioning finds the dashboards (local/compose.yaml mounts it).
const dashboardDir = "local/grafana/dashboards"

// dashboard is the part of a Grafana dashboard JSON model the tests read.
type dashboard struct {
	file       string
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Targets    []target    `json:"targets"`
	Panels     []panel     `json:"panels"` // a collapsed row's panels
}

type target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *datasource `json:"datasource"`
	Hide       bool        `json:"hide"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Definition string          `json:"definition"`
	Current    json.RawMessage `json:"current"`
}

// panelQuery is one PromQL query of one panel.
type panelQuery struct {
	dashboard, panel, refID string
	expr                    string
}

func (q panelQuery) String() string {
	return fmt.Sprintf("%s / %q / %s", q.dashboard, q.panel, q.refID)
}

// loadDashboards reads every *.json in local/grafana/dashboards.
func loadDashboards(t *testing.T) []dashboard {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, dashboardDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no dashboards in %s", dashboardDir)
	}
	var out []dashboard
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		d.file = filepath.Base(f)
		out = append(out, d)
	}
	return out
}

// allPanels returns the panels of d, rows' nested panels included, rows themselves left out.
func (d dashboard) allPanels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type != "row" {
				out = append(out, p)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// queries returns every target's query of every panel of d.
func (d dashboard) queries() []panelQuery {
	var out []panelQuery
	for _, p := range d.allPanels() {
		for _, tg := range p.Targets {
			out = append(out, panelQuery{dashboard: d.file, panel: p.Title, refID: tg.RefID, expr: tg.Expr})
		}
	}
	return out
}

// grafanaVar matches the variable syntaxes Grafana interpolates: $name, ${name}, ${name:format}, [[name]].
var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)

// interpolate replaces Grafana's variables in expr the way Grafana would for one evaluation: the built-in
// intervals by a window that covers the test's traffic, dashboard variables by vars. Any other variable is
// an error: the dashboard uses something the test does not know how to fill.
func interpolate(expr string, vars map[string]string) (string, error) {
	builtin := map[string]string{
		"__rate_interval": "2m", "__interval": "15s", "__range": "5m", "__interval_ms": "15000",
	}
	var unknown []string
	out := grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sm := grafanaVar.FindStringSubmatch(m)
		name := sm[1] + sm[2] + sm[3]
		if v, ok := builtin[name]; ok {
			return v
		}
		if v, ok := vars[name]; ok {
			return v
		}
		unknown = append(unknown, name)
		return m
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown variable(s) %q in %s", unknown, expr)
	}
	return out, nil
}

// Static checks: every dashboard loads, has a unique uid, queries the provisioned datasource, and every
// panel has at least one query; variables are query variables the live test can resolve.
func TestDashboardsAreWellFormed(t *testing.T) {
	t.Parallel()
	ds := provisionedDatasourceUID(t)
	uids := map[string]string{}
	for _, d := range loadDashboards(t) {
		if d.UID == "" || d.Title == "" {
			t.Errorf("%s: uid %q, title %q: both are needed", d.file, d.UID, d.Title)
		}
		if other, dup := uids[d.UID]; dup {
			t.Errorf("%s and %s share uid %q", d.file, other, d.UID)
		}
		uids[d.UID] = d.file
		ids := map[int]bool{}
		var walk func([]panel)
		walk = func(ps []panel) {
			for _, p := range ps {
				if ids[p.ID] {
					t.Errorf("%s: panel id %d used twice", d.file, p.ID)
				}
				ids[p.ID] = true
				walk(p.Panels)
			}
		}
		walk(d.Panels)
		for _, p := range d.allPanels() {
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", d.file, p.Title)
			}
			if p.Datasource == nil || p.Datasource.UID != ds {
				t.Errorf("%s: panel %q does not use the provisioned datasource (uid %q)", d.file, p.Title, ds)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s: panel %q target %s has no expr", d.file, p.Title, tg.RefID)
				}
				if tg.Hide {
					t.Errorf("%s: panel %q target %s is hidden: remove it instead", d.file, p.Title, tg.RefID)
				}
				if refs[tg.RefID] {
					t.Errorf("%s: panel %q: refId %s twice", d.file, p.Title, tg.RefID)
				}
				refs[tg.RefID] = true
			}
		}
		for _, v := range d.Templating.List {
			if v.Type != "query" || !labelValuesQuery.MatchString(v.Definition) {
				t.Errorf("%s: variable %q: only label_values(metric, label) query variables are supported by the live test", d.file, v.Name)
			}
		}
	}
}

// labelValuesQuery matches a Grafana label_values(metric, label) variable query.
var labelValuesQuery = regexp.MustCompile(`^label_values\((\w+),\s*(\w+)\)$`)

// provisionedDatasourceUID reads the uid of the datasource Grafana provisions.
func provisionedDatasourceUID(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "local/grafana/provisioning/datasources/prometheus.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*uid:\s*(\S+)\s*$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("the provisioned datasource has no uid")
	}
	return string(m[1])
}

func TestInterpolate(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"queue": "q1"}
	for in, want := range map[string]string{
		`rate(x[$__rate_interval])`:               `rate(x[2m])`,
		`y{queue="$queue"}`:                       `y{queue="q1"}`,
		`y{queue="${queue}.dead"}`:                `y{queue="q1.dead"}`,
		`y{queue=~"${queue:regex}"}`:              `y{queue=~"q1"}`,
		`y{queue="[[queue]]"} + z[${__interval}]`: `y{queue="q1"} + z[15s]`,
	} {
		got, err := interpolate(in, vars)
		if err != nil || got != want {
			t.Errorf("interpolate(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := interpolate(`x{a="$nope"}`, vars); err == nil || !slices.ContainsFunc([]string{err.Error()}, func(s string) bool { return strings.Contains(s, "nope") }) {
		t.Errorf("unknown variable: %v", err)
	}
}
