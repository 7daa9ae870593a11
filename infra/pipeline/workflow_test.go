package pipeline

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"gopkg.in/yaml.v3"
)

var workflowsDir = filepath.Join("..", "..", ".github", "workflows")

// TestActionlint lints every workflow with actionlint, as a library (shellcheck and pyflakes are not run).
func TestActionlint(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(workflowsDir, "*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no workflows in %s: %v", workflowsDir, err)
	}
	var out bytes.Buffer
	linter, err := actionlint.NewLinter(&out, &actionlint.LinterOptions{Color: actionlint.ColorOptionKindNever, Oneline: true})
	if err != nil {
		t.Fatal(err)
	}
	errs, err := linter.LintFiles(files, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		t.Errorf("%s:%d:%d: %s [%s]", e.Filepath, e.Line, e.Column, e.Message, e.Kind)
	}
}

// workflow is the part of a workflow file these checks read.
type workflow struct {
	On          map[string]any    `yaml:"on"`
	Permissions map[string]string `yaml:"permissions"`
	Concurrency any               `yaml:"concurrency"`
	Jobs        map[string]job    `yaml:"jobs"`
}

type job struct {
	Concurrency map[string]any    `yaml:"concurrency"`
	Needs       any               `yaml:"needs"`
	If          string            `yaml:"if"`
	Uses        string            `yaml:"uses"`
	With        map[string]any    `yaml:"with"`
	Secrets     any               `yaml:"secrets"`
	Permissions map[string]string `yaml:"permissions"`
	Environment any               `yaml:"environment"`
	Steps       []step            `yaml:"steps"`
}

type step struct {
	Name string            `yaml:"name"`
	Uses string            `yaml:"uses"`
	Run  string            `yaml:"run"`
	With map[string]any    `yaml:"with"`
	Env  map[string]string `yaml:"env"`
}

func load(t *testing.T, name string) workflow {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(workflowsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var w workflow
	if err := yaml.Unmarshal(raw, &w); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return w
}

func needs(j job) []string {
	switch n := j.Needs.(type) {
	case string:
		return []string{n}
	case []any:
		var out []string
		for _, x := range n {
			out = append(out, x.(string))
		}
		return out
	}
	return nil
}

func runs(j job) string {
	var b strings.Builder
	for _, s := range j.Steps {
		b.WriteString(s.Run + "\n")
	}
	return b.String()
}

func TestPipeline(t *testing.T) {
	w := load(t, "pipeline.yml")

	// Every push and every pull request runs the tests.
	if _, ok := w.On["push"]; !ok {
		t.Error("not triggered on push")
	}
	if _, ok := w.On["pull_request"]; !ok {
		t.Error("not triggered on pull_request")
	}
	if w.Permissions["contents"] != "read" || len(w.Permissions) != 1 {
		t.Errorf("workflow permissions %v, want contents: read only", w.Permissions)
	}
	test, ok := w.Jobs["test"]
	if !ok || !strings.Contains(runs(test), ".ci/run") {
		t.Fatal("no test job running .ci/run")
	}
	if test.If != "" || len(needs(test)) != 0 {
		t.Errorf("the test job must run unconditionally, got if=%q needs=%v", test.If, needs(test))
	}
	ciRun, err := os.ReadFile(filepath.Join("..", "..", ".ci", "run"))
	if err != nil || !regexp.MustCompile(`(?m)^make test$`).Match(ciRun) {
		t.Errorf(".ci/run does not end in `make test`: %v", err)
	}

	// main only: build once, after the tests.
	build := w.Jobs["build"]
	if !slices.Equal(needs(build), []string{"test"}) {
		t.Errorf("build needs %v, want [test]", needs(build))
	}
	if !strings.Contains(build.If, "github.ref == 'refs/heads/main'") || !strings.Contains(build.If, "github.event_name == 'push'") {
		t.Errorf("build runs on %q, want pushes to main only", build.If)
	}
	if !strings.Contains(runs(build), "make synth") {
		t.Error("build does not run make synth")
	}
	// The assembly travels as a tarball: an artifact of loose files loses the executable bit of the
	// Lambdas' bootstrap.
	var uploads bool
	for _, s := range build.Steps {
		uploads = uploads || strings.HasPrefix(s.Uses, "actions/upload-artifact@") && s.With["name"] == "cloud-assembly" && s.With["path"] == "cloud-assembly.tar.gz"
	}
	if !uploads || !strings.Contains(runs(build), "tar -czf cloud-assembly.tar.gz cdk.out") {
		t.Error("build does not upload the cloud assembly as a tarball")
	}

	// dev -> staging -> prod, each through the reusable deploy workflow with OIDC.
	chain := []struct{ job, after, stage string }{{"deploy-dev", "build", "dev"}, {"deploy-staging", "deploy-dev", "staging"}, {"deploy-prod", "deploy-staging", "prod"}}
	for _, c := range chain {
		j, ok := w.Jobs[c.job]
		if !ok {
			t.Errorf("no job %s", c.job)
			continue
		}
		if !slices.Equal(needs(j), []string{c.after}) {
			t.Errorf("%s needs %v, want [%s]", c.job, needs(j), c.after)
		}
		if j.Uses != "./.github/workflows/deploy.yml" || j.With["stage"] != c.stage {
			t.Errorf("%s uses %q with %v, want deploy.yml with stage %s", c.job, j.Uses, j.With, c.stage)
		}
		if j.Permissions["id-token"] != "write" || j.Permissions["contents"] != "read" {
			t.Errorf("%s permissions %v: OIDC needs id-token: write", c.job, j.Permissions)
		}
	}
	// Nothing else deploys.
	for name, j := range w.Jobs {
		if j.Uses != "" && !strings.HasPrefix(name, "deploy-") {
			t.Errorf("job %s calls %s", name, j.Uses)
		}
	}
}

func TestDeployWorkflow(t *testing.T) {
	w := load(t, "deploy.yml")
	call, ok := w.On["workflow_call"].(map[string]any)
	if !ok {
		t.Fatal("deploy.yml is not a reusable workflow (on: workflow_call)")
	}
	stage, _ := call["inputs"].(map[string]any)["stage"].(map[string]any)
	if stage["required"] != true || stage["type"] != "string" {
		t.Errorf("input stage %v, want a required string", stage)
	}
	if len(w.Jobs) != 2 {
		t.Fatalf("%d jobs, want 2 (diff, deploy)", len(w.Jobs))
	}
	for name, j := range w.Jobs {
		if name != "deploy" {
			continue
		}
		// The GitHub environment is the stage's: its protection rules (prod: required reviewers) gate the job.
		env, _ := j.Environment.(map[string]any)
		if env["name"] != "${{ inputs.stage }}" {
			t.Errorf("environment %v, want the stage's (${{ inputs.stage }})", j.Environment)
		}
		var downloads, assumesRole bool
		for _, s := range j.Steps {
			if strings.HasPrefix(s.Uses, "actions/download-artifact@") && s.With["name"] == "cloud-assembly" {
				downloads = true
			}
			if strings.HasPrefix(s.Uses, "aws-actions/configure-aws-credentials@") {
				assumesRole = s.With["role-to-assume"] == "${{ vars.AWS_DEPLOY_ROLE_ARN }}"
				for k := range s.With {
					if strings.Contains(k, "access-key") || strings.Contains(k, "secret") {
						t.Errorf("static AWS keys (%s): use OIDC role assumption", k)
					}
				}
			}
		}
		if !downloads || !assumesRole {
			t.Errorf("deploy job: downloads the assembly %v, assumes the role through OIDC %v", downloads, assumesRole)
		}
		r := runs(j)
		if !strings.Contains(r, "tar -xzf cloud-assembly.tar.gz") {
			t.Error("deploy job does not unpack the assembly tarball")
		}
		if !strings.Contains(r, "make deploy") || !strings.Contains(r, "CDK_APP=cdk.out") {
			t.Errorf("deploy job runs %q, want make deploy from the downloaded assembly", r)
		}
	}
	if w.Permissions["id-token"] != "write" {
		t.Errorf("permissions %v lack id-token: write", w.Permissions)
	}
}

// TestActionsArePinned: every action is pinned to a full commit SHA (a tag can be moved), with the
// release it is in a comment on the same line, and one action is pinned to one commit everywhere.
func TestActionsArePinned(t *testing.T) {
	line := regexp.MustCompile(`(?m)^\s*-?\s*uses:\s*(\S+)(.*)$`)
	pinned := regexp.MustCompile(`^([\w.-]+/[\w./-]+)@([0-9a-f]{40})$`)
	release := regexp.MustCompile(`^\s+# v\d+\.\d+\.\d+$`)
	commits := map[string]string{}
	for _, name := range []string{"pipeline.yml", "deploy.yml"} {
		raw, err := os.ReadFile(filepath.Join(workflowsDir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range line.FindAllStringSubmatch(string(raw), -1) {
			uses, comment := m[1], m[2]
			if strings.HasPrefix(uses, "./") {
				continue // a reusable workflow of this repository
			}
			p := pinned.FindStringSubmatch(uses)
			if p == nil {
				t.Errorf("%s: %q is not pinned to a commit SHA", name, uses)
				continue
			}
			if !release.MatchString(comment) {
				t.Errorf("%s: %s has no release comment (# vX.Y.Z): %q", name, uses, comment)
			}
			if prev, ok := commits[p[1]]; ok && prev != p[2] {
				t.Errorf("%s is pinned to %s and %s", p[1], prev, p[2])
			}
			commits[p[1]] = p[2]
		}
	}
	for _, a := range []string{"actions/checkout", "actions/setup-go", "actions/setup-node", "aws-actions/configure-aws-credentials"} {
		if commits[a] == "" {
			t.Errorf("%s is not used", a)
		}
	}
}

// TestNode22: every job that sets up Node uses Node 22 (20 is end of life), and the CDK CLI's own Node
// (infra/package.json) is 22 too.
func TestNode22(t *testing.T) {
	for _, name := range []string{"pipeline.yml", "deploy.yml"} {
		for jobName, j := range load(t, name).Jobs {
			for _, s := range j.Steps {
				if strings.HasPrefix(s.Uses, "actions/setup-node@") && fmt.Sprint(s.With["node-version"]) != "22" {
					t.Errorf("%s job %s sets up Node %v, want 22", name, jobName, s.With["node-version"])
				}
			}
		}
	}
	raw, err := os.ReadFile(filepath.Join("..", "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`"node": "22\.\d+\.\d+"`).Match(raw) {
		t.Errorf("infra/package.json does not pin Node 22 for the CDK CLI:\n%s", raw)
	}
}

// TestConcurrencyPerStage: no workflow-wide concurrency group (a prod deploy waiting for its approval
// would hold every later push); the diff and deploy jobs each queue per stage, never cancelling a deploy.
func TestConcurrencyPerStage(t *testing.T) {
	for _, name := range []string{"pipeline.yml", "deploy.yml"} {
		if w := load(t, name); w.Concurrency != nil {
			t.Errorf("%s has a workflow-wide concurrency group %v", name, w.Concurrency)
		}
	}
	w := load(t, "deploy.yml")
	for _, jobName := range []string{"diff", "deploy"} {
		j := w.Jobs[jobName]
		group, _ := j.Concurrency["group"].(string)
		if !strings.Contains(group, "${{ inputs.stage }}") || j.Concurrency["cancel-in-progress"] != false {
			t.Errorf("deploy.yml job %s: concurrency %v, want a group per stage that cancels nothing", jobName, j.Concurrency)
		}
	}
}

// TestDiffBeforeApproval: the stage's cdk diff runs before the deploy job (which waits for prod's
// approval), outside the approval-gated environment, and lands in the run's summary.
func TestDiffBeforeApproval(t *testing.T) {
	w := load(t, "deploy.yml")
	diff, deploy := w.Jobs["diff"], w.Jobs["deploy"]
	if !slices.Equal(needs(deploy), []string{"diff"}) {
		t.Errorf("deploy needs %v, want [diff]", needs(deploy))
	}
	env, _ := diff.Environment.(map[string]any)
	if env["name"] != "${{ inputs.stage }}-diff" {
		t.Errorf("diff environment %v, want ${{ inputs.stage }}-diff (no reviewers: it runs before the approval)", diff.Environment)
	}
	r := runs(diff)
	if !strings.Contains(r, "make diff") || !strings.Contains(r, "CDK_APP=cdk.out") || !strings.Contains(r, "$GITHUB_STEP_SUMMARY") {
		t.Errorf("diff job runs %q, want make diff of the built assembly into the step summary", r)
	}
	for _, s := range diff.Steps {
		if strings.HasPrefix(s.Uses, "aws-actions/configure-aws-credentials@") && s.With["role-to-assume"] != "${{ vars.AWS_DIFF_ROLE_ARN }}" {
			t.Errorf("diff job assumes %v, want the read-only ${{ vars.AWS_DIFF_ROLE_ARN }}", s.With["role-to-assume"])
		}
	}
	// No stored token: the smoke check mints its own.
	for _, s := range deploy.Steps {
		if _, ok := s.Env["SMOKE_JWT"]; ok {
			t.Error("the deploy job passes a stored SMOKE_JWT; the smoke check mints a token by client credentials")
		}
	}
}
