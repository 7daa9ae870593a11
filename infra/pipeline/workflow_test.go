package pipeline

import (
	"bytes"
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
	Jobs        map[string]job    `yaml:"jobs"`
}

type job struct {
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
	if len(w.Jobs) != 1 {
		t.Fatalf("%d jobs, want 1", len(w.Jobs))
	}
	for _, j := range w.Jobs {
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

// TestActionsArePinned: every action is pinned to a release tag or a commit, never a branch.
func TestActionsArePinned(t *testing.T) {
	pinned := regexp.MustCompile(`^[\w.-]+/[\w./-]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$`)
	for _, name := range []string{"pipeline.yml", "deploy.yml"} {
		for jobName, j := range load(t, name).Jobs {
			for _, s := range j.Steps {
				if s.Uses != "" && !pinned.MatchString(s.Uses) {
					t.Errorf("%s job %s: %q is not pinned to a version", name, jobName, s.Uses)
				}
			}
		}
	}
}
