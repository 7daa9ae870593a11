package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLISynth runs the pinned CDK CLI on the repository's cdk.json, the way `make synth` and
// `make deploy` do: it checks the app command, the stage selection by context, the relative output folder
// (the CLI names it relative to the repository root while the app runs in infra/), and that this CLI
// version reads the cloud assembly the library writes.
func TestCLISynth(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cdk := cdkCLI(t, root)
	// The CLI and the app's jsii runtime run on the Node.js 22 that infra/package.json pins, as in make synth.
	bin := filepath.Dir(cdk)
	if v, err := exec.Command(filepath.Join(bin, "node"), "--version").Output(); err != nil || !strings.HasPrefix(string(v), "v22.") {
		t.Fatalf("the pinned Node.js is %q (%v), want v22", v, err)
	}

	dist := t.TempDir()
	for _, b := range []struct{ pkg, dir string }{{"./cmd/gateway", "gateway"}, {"./cmd/queuedepth", "queuedepth"}, {"./cmd/brokerusers", "brokerusers"}} {
		cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-trimpath", "-o", filepath.Join(dist, b.dir, "bootstrap"), b.pkg)
		cmd.Dir = filepath.Join(root, "functions")
		cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", b.pkg, err, out)
		}
	}

	out := fmt.Sprintf("cdk.out.test-%d", os.Getpid())
	t.Cleanup(func() {
		os.RemoveAll(filepath.Join(root, out))
		os.RemoveAll(filepath.Join(root, "infra", out))
	})
	synth := func(stage string) (string, error) {
		cmd := exec.Command(cdk, "synth", "--quiet", "--output", out, "-c", "stage="+stage,
			"-c", "gatewayCode="+filepath.Join(dist, "gateway"), "-c", "queueDepthCode="+filepath.Join(dist, "queuedepth"),
			"-c", "brokerUsersCode="+filepath.Join(dist, "brokerusers"))
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "CDK_DISABLE_VERSION_CHECK=1")
		b, err := cmd.CombinedOutput()
		return string(b), err
	}

	log, err := synth("staging")
	if err != nil {
		t.Fatalf("cdk synth -c stage=staging: %v\n%s", err, log)
	}
	raw, err := os.ReadFile(filepath.Join(root, out, "manifest.json"))
	if err != nil {
		t.Fatalf("the CLI's output folder has no manifest (did the app write elsewhere?): %v\n%s", err, log)
	}
	var manifest struct {
		Artifacts map[string]struct {
			Type string `json:"type"`
		} `json:"artifacts"`
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	var stacks []string
	for name, a := range manifest.Artifacts {
		if a.Type == "aws:cloudformation:stack" {
			stacks = append(stacks, name)
		}
	}
	if len(stacks) != 1 || stacks[0] != "ScrapingPlatform-staging" {
		t.Fatalf("-c stage=staging synthesized %v", stacks)
	}
	if _, err := os.Stat(filepath.Join(root, out, "ScrapingPlatform-staging.template.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "infra", out)); err == nil {
		t.Errorf("the app wrote infra/%s: relative CLI paths were resolved in infra/", out)
	}

	if log, err := synth("qa"); err == nil || !strings.Contains(log, `unknown stage "qa"`) {
		t.Fatalf("an unknown stage: err %v\n%s", err, log)
	}
}

// cdkCLI returns the pinned CDK CLI in .tools/cdk (where `make cdk` puts it, next to the pinned Node.js),
// installing both from infra/package-lock.json with npm ci when they are missing.
func cdkCLI(t *testing.T, root string) string {
	t.Helper()
	dir := filepath.Join(root, ".tools", "cdk")
	bin := filepath.Join(dir, "node_modules", ".bin", "cdk")
	want, err := os.ReadFile(filepath.Join(root, "infra", "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	if have, err := os.ReadFile(filepath.Join(dir, "package-lock.json")); err == nil && string(have) == string(want) {
		if _, err := os.Stat(bin); err == nil {
			return bin
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join(root, "infra", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("this test needs the pinned CDK CLI (make cdk installs it; it needs npm and the npm registry): %v\n%s", err, out)
	}
	return bin
}
