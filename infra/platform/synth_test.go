package platform

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/scrapeplatform/platform/infra/stage"
)

// The tests synthesize every stage of cdk.json once, in one app (jsii's start-up is the slow part), with
// cdk-nag applied exactly as the real app applies it, and share the result.

// repoRoot is the repository root, from this package's folder.
var repoRoot = func() string {
	abs, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err)
	}
	return abs
}()

// synthesized is one stage's result.
type synthesized struct {
	settings stage.Settings
	stack    awscdk.Stack
	// grafana is the stage's optional Grafana stack's template (nil when off).
	grafana     map[string]any
	template    assertions.Template
	annotations assertions.Annotations
	// json is the template as plain data, for checks the assertions library cannot express.
	json map[string]any
}

type assembly struct {
	outdir string
	stages map[string]*synthesized
	// dockerMarker is the file the fake docker writes to when anything calls it.
	dockerMarker string
	took         time.Duration
}

var (
	synthOnce   sync.Once
	synthResult *assembly
	synthErr    error
)

// synth returns the synthesized stages, failing t when synthesis failed.
func synth(t *testing.T) *assembly {
	t.Helper()
	synthOnce.Do(func() { synthResult, synthErr = doSynth() })
	if synthErr != nil {
		t.Fatal(synthErr)
	}
	return synthResult
}

// stageNames returns the stages in a fixed order.
func (a *assembly) stageNames() []string {
	names := make([]string, 0, len(a.stages))
	for n := range a.stages {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// forEachStage runs f as a subtest per stage.
func forEachStage(t *testing.T, f func(t *testing.T, s *synthesized)) {
	a := synth(t)
	for _, name := range a.stageNames() {
		t.Run(name, func(t *testing.T) { f(t, a.stages[name]) })
	}
}

// loadStages reads the "stages" context of the repository's cdk.json.
func loadStages() (map[string]stage.Settings, map[string]any, error) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "cdk.json"))
	if err != nil {
		return nil, nil, err
	}
	var cdk struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(raw, &cdk); err != nil {
		return nil, nil, fmt.Errorf("cdk.json: %w", err)
	}
	all, err := stage.Parse(cdk.Context["stages"])
	return all, cdk.Context, err
}

// buildLambda cross-compiles a functions/ command the way the Makefile does, into dir/bootstrap.
func buildLambda(functionsDir, pkg, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "bootstrap"), pkg)
	cmd.Dir = functionsDir
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s for the Lambda asset: %v\n%s", pkg, err, out)
	}
	return nil
}

func doSynth() (_ *assembly, err error) {
	start := time.Now()
	// The CDK reports construct errors by panicking; make them the tests' failure message.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("synthesis failed: %v", r)
		}
	}()
	all, cdkContext, err := loadStages()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "infra-synth-")
	if err != nil {
		return nil, err
	}
	// Left for inspection only when INFRA_KEEP_CDK_OUT is set.
	if os.Getenv("INFRA_KEEP_CDK_OUT") == "" {
		cleanups = append(cleanups, func() { os.RemoveAll(tmp) })
	}

	// The real Lambda bootstraps, built from functions/ (INFRA_FUNCTIONS_DIR builds them from another
	// checkout, e.g. while functions/ is mid-edit).
	functionsDir := os.Getenv("INFRA_FUNCTIONS_DIR")
	if functionsDir == "" {
		functionsDir = filepath.Join(repoRoot, "functions")
	}
	art := Artifacts{
		GatewayCode:     filepath.Join(tmp, "dist", "gateway"),
		QueueDepthCode:  filepath.Join(tmp, "dist", "queuedepth"),
		BrokerUsersCode: filepath.Join(tmp, "dist", "brokerusers"),
		RepoRoot:        repoRoot,
	}
	var wg sync.WaitGroup
	builds := []struct{ pkg, dir string }{{"./cmd/gateway", art.GatewayCode}, {"./cmd/queuedepth", art.QueueDepthCode}, {"./cmd/brokerusers", art.BrokerUsersCode}}
	errs := make([]error, len(builds))
	for i, b := range builds {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = buildLambda(functionsDir, b.pkg, b.dir) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}

	// Synthesis must not need Docker (the image asset is only hashed and staged): any docker call lands
	// in a marker file and fails the tests.
	marker := filepath.Join(tmp, "docker-was-called")
	fakeDocker := filepath.Join(tmp, "fake-docker")
	if err := os.WriteFile(fakeDocker, []byte("#!/bin/sh\necho \"$@\" >> "+marker+"\nexit 1\n"), 0o755); err != nil {
		return nil, err
	}
	os.Setenv("CDK_DOCKER", fakeDocker)
	os.Setenv("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
	// A deterministic account: the real app takes it from the stage or the CLI's credentials.
	os.Setenv("CDK_DEFAULT_ACCOUNT", "123456789012")

	outdir := filepath.Join(tmp, "cdk.out")
	// The app gets cdk.json's other context too (feature flags such as validating templates against
	// CloudFormation's rules), as `cdk synth` would pass it.
	appContext := map[string]any{}
	for k, v := range cdkContext {
		if k != "stage" && k != "stages" {
			appContext[k] = v
		}
	}
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(outdir), Context: &appContext})
	result := &assembly{outdir: outdir, stages: map[string]*synthesized{}, dockerMarker: marker}
	// Grafana is off in every stage of cdk.json; staging gets it here so that its separate stack is
	// synthesized and checked too.
	if s, ok := all[grafanaTestStage]; ok {
		s.Observability.Grafana = true
		all[grafanaTestStage] = s
	}
	// Every stage of cdk.json serves GET /status openly; one stage closes it here, so both are checked.
	if s, ok := all[closedStatusTestStage]; ok {
		s.API.StatusPublic = jsii.Bool(false)
		all[closedStatusTestStage] = s
	}
	for _, name := range sortedNames(all) {
		p, err := New(app, all[name], art)
		if err != nil {
			return nil, err
		}
		result.stages[name] = &synthesized{settings: all[name], stack: p.Stack}
	}
	Check(app)
	app.Synth(nil)
	for _, s := range result.stages {
		s.template = assertions.Template_FromStack(s.stack, nil)
		s.annotations = assertions.Annotations_FromStack(s.stack)
		raw, err := os.ReadFile(filepath.Join(outdir, StackName(s.settings.Name)+".template.json"))
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(raw, &s.json); err != nil {
			return nil, err
		}
		if s.settings.Observability.Grafana {
			raw, err := os.ReadFile(filepath.Join(outdir, GrafanaStackName(s.settings.Name)+".template.json"))
			if err != nil {
				return nil, err
			}
			if err := json.Unmarshal(raw, &s.grafana); err != nil {
				return nil, err
			}
		}
	}
	result.took = time.Since(start)
	return result, nil
}

// grafanaTestStage is the stage the tests synthesize with its optional Grafana stack.
const grafanaTestStage = "staging"

// closedStatusTestStage is the stage the tests synthesize with api.statusPublic false.
const closedStatusTestStage = "prod"

var cleanups []func()

func TestMain(m *testing.M) {
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	if synthResult != nil {
		fmt.Printf("synthesized %d stages in %s (%s)\n", len(synthResult.stages), synthResult.took.Round(time.Millisecond), runtime.Version())
	}
	jsii.Close()
	os.Exit(code)
}

func sortedNames(m map[string]stage.Settings) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// check runs an assertion of the CDK assertions library, which panics on failure, as a test error.
func check(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s:\n%v", what, r)
		}
	}()
	f()
}

// resources returns the template's resources of one type, by logical id.
func (s *synthesized) resources(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range s.json["Resources"].(map[string]any) {
		res := r.(map[string]any)
		if res["Type"] == typ {
			out[id] = res
		}
	}
	return out
}

// props returns a resource's Properties.
func props(r map[string]any) map[string]any {
	p, _ := r["Properties"].(map[string]any)
	return p
}

// one returns the only resource of a type, failing t when there is not exactly one.
func (s *synthesized) one(t *testing.T, typ string) (string, map[string]any) {
	t.Helper()
	rs := s.resources(typ)
	if len(rs) != 1 {
		t.Fatalf("want exactly one %s, found %d", typ, len(rs))
	}
	for id, r := range rs {
		return id, r
	}
	return "", nil
}

// compact renders v as one-line JSON, for messages and substring checks.
func compact(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSuffix(b.String(), "\n")
}

// contains reports whether v's JSON contains every one of subs.
func contains(v any, subs ...string) bool {
	j := compact(v)
	for _, s := range subs {
		if !strings.Contains(j, s) {
			return false
		}
	}
	return true
}
