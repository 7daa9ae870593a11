// Package container validates what Docker users get — local/compose.yaml and the images' Dockerfiles —
// without a Docker engine: the files are read by the parsers Docker itself uses (compose-spec/compose-go
// and BuildKit's Dockerfile parser, instructions and linter), checked against the rules below and against
// the rest of the repository (ports, variable names, paths, rules and dashboards), the Dockerfiles' Go
// builds are run as they run in the image (GOWORK=off, CGO_ENABLED=0), and the seed job's script runs
// against a real versitygw.
package container

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// repoRoot is the repository root: the build context of every Dockerfile.
var repoRoot = func() string {
	p, err := filepath.Abs("../..")
	if err != nil {
		panic(err)
	}
	return p
}()

// image is what a Dockerfile must provide.
type image struct {
	dockerfile string // relative to the repository root
	// binaries the build stage compiles: module folder → packages.
	module   string
	packages []string
	python   bool // the runtime image runs Python scripts
}

var images = []image{
	{dockerfile: "functions/Dockerfile", module: "functions", packages: []string{"./cmd/gateway-local", "./cmd/devtoken"}},
	{dockerfile: "worker/Dockerfile", module: "worker", packages: []string{"./cmd/worker", "./cmd/scrapectl"}, python: true},
}

// parsedDockerfile is a Dockerfile read by BuildKit.
type parsedDockerfile struct {
	stages   []instructions.Stage
	metaArgs map[string]string // ARGs before the first FROM, with their defaults
	lint     []string          // BuildKit linter warnings
}

func parseDockerfile(t *testing.T, path string) parsedDockerfile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, path))
	if err != nil {
		t.Fatal(err)
	}
	res, err := parser.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var p parsedDockerfile
	for _, w := range res.Warnings {
		p.lint = append(p.lint, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		p.lint = append(p.lint, fmt.Sprintf("line %d: %s: %s", line, rule, msg))
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	p.stages = stages
	p.metaArgs = map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			p.metaArgs[kv.Key] = kv.ValueString()
		}
	}
	return p
}

// baseImage returns a stage's FROM with the global ARGs' defaults substituted, as Docker does: an ARG's
// default may name an earlier ARG (GO_IMAGE=golang:${GO_VERSION}-bookworm).
func (p parsedDockerfile) baseImage(s instructions.Stage) string {
	ref := s.BaseName
	for range 4 {
		ref = os.Expand(ref, func(k string) string { return p.metaArgs[k] })
	}
	return ref
}

// flatten returns stage s with the commands of the stages it builds on (FROM <an earlier stage>) before its
// own, and the base image of the first of them: what the image of s holds.
func (p parsedDockerfile) flatten(s instructions.Stage) instructions.Stage {
	for range len(p.stages) {
		i := slices.IndexFunc(p.stages, func(st instructions.Stage) bool {
			return st.Name != "" && strings.EqualFold(st.Name, s.BaseName)
		})
		if i < 0 {
			break
		}
		parent := p.stages[i]
		s.BaseName = parent.BaseName
		s.Commands = append(slices.Clone(parent.Commands), s.Commands...)
	}
	return s
}

// stage returns the stage named name.
func (p parsedDockerfile) stage(name string) (instructions.Stage, bool) {
	i := slices.IndexFunc(p.stages, func(st instructions.Stage) bool { return strings.EqualFold(st.Name, name) })
	if i < 0 {
		return instructions.Stage{}, false
	}
	return p.stages[i], true
}

// copied returns where a stage's COPY instructions put files, with the stage they come from.
func copied(s instructions.Stage) []string {
	var out []string
	for _, c := range s.Commands {
		if cp, ok := c.(*instructions.CopyCommand); ok {
			from := cp.From
			if from == "" {
				from = "context"
			}
			for _, src := range cp.SourcePaths {
				out = append(out, filepath.Base(src)+" → "+cp.DestPath+" (from "+from+")")
			}
		}
	}
	return out
}

// pinned reports whether ref names a fixed version: a digest, or a tag that carries a version number
// (golang:1.26.8-bookworm, python:3.12-slim-bookworm) — never "latest" or no tag.
func pinned(ref string) bool {
	if strings.Contains(ref, "@sha256:") {
		return true
	}
	name := ref[strings.LastIndex(ref, "/")+1:]
	_, tag, ok := strings.Cut(name, ":")
	return ok && tag != "latest" && regexp.MustCompile(`\d`).MatchString(tag)
}

func TestDockerfiles(t *testing.T) {
	t.Parallel()
	for _, img := range images {
		t.Run(img.dockerfile, func(t *testing.T) {
			t.Parallel()
			p := parseDockerfile(t, img.dockerfile)
			// A `# syntax=` line makes BuildKit fetch its frontend from a registry before building.
			if b, err := os.ReadFile(filepath.Join(repoRoot, img.dockerfile)); err != nil || regexp.MustCompile(`(?im)^#\s*syntax\s*=`).Match(b) {
				t.Errorf("a `# syntax=` line (or unreadable: %v): the build would need a registry", err)
			}
			for _, w := range p.lint {
				t.Errorf("BuildKit lint: %s", w)
			}
			if len(p.stages) < 2 {
				t.Fatalf("%d stage(s): want a multi-stage build (a build stage, then a small runtime stage)", len(p.stages))
			}
			names := map[string]bool{}
			for i, s := range p.stages {
				base := p.baseImage(s)
				// scratch: BINARIES_IMAGE's default, the prebuilt targets' empty stand-in (make images PREBUILT=1
				// names the image with the host's binaries).
				if !names[strings.ToLower(base)] && !pinned(base) && base != "scratch" {
					t.Errorf("stage %d: base image %q is not pinned to a version", i, base)
				}
				// Where no registry answers, make base-images provides stand-ins; a build argument lets
				// anyone name another base image without editing the file.
				if !names[strings.ToLower(s.BaseName)] && !strings.HasPrefix(s.BaseName, "${") {
					t.Errorf("stage %d: FROM %s: make the base image a build argument (ARG …=%s)", i, s.BaseName, base)
				}
				for _, c := range s.Commands {
					if cp, ok := c.(*instructions.CopyCommand); ok && cp.From != "" && !names[strings.ToLower(cp.From)] {
						t.Errorf("stage %d: COPY --from=%s names no earlier stage", i, cp.From)
					}
					if cp, ok := c.(*instructions.CopyCommand); ok && cp.From == "" {
						for _, src := range cp.SourcePaths {
							if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
								t.Errorf("stage %d: COPY %s: not in the build context (the repository root): %v", i, src, err)
							}
						}
					}
				}
				if s.Name != "" {
					names[strings.ToLower(s.Name)] = true
				}
			}

			final := p.flatten(p.stages[len(p.stages)-1])
			// The prebuilt target (make images PREBUILT=1, the container tests' images) is the same image with
			// the host's binaries: the same runtime stage, the same files copied to the same places.
			if pre, ok := p.stage("prebuilt"); !ok {
				t.Error("no `prebuilt` stage (make images PREBUILT=1 builds it)")
			} else {
				pre = p.flatten(pre)
				if pre.BaseName != final.BaseName {
					t.Errorf("the prebuilt target is based on %s, the default image on %s", pre.BaseName, final.BaseName)
				}
				strip := func(l []string) []string {
					out := []string{}
					for _, x := range l {
						x, _, _ = strings.Cut(x, " (from ")
						out = append(out, x)
					}
					slices.Sort(out)
					return out
				}
				if a, b := strip(copied(pre)), strip(copied(final)); !slices.Equal(a, b) {
					t.Errorf("the prebuilt target copies %v, the default image %v", a, b)
				}
			}
			user, health, entry := "", (*instructions.HealthCheckCommand)(nil), false
			for _, c := range final.Commands {
				switch c := c.(type) {
				case *instructions.UserCommand:
					user = c.User
				case *instructions.HealthCheckCommand:
					health = c
				case *instructions.EntrypointCommand, *instructions.CmdCommand:
					entry = true
				}
			}
			if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
				t.Errorf("the runtime stage runs as %q: set USER to an unprivileged user", user)
			}
			if health == nil || len(health.Health.Test) == 0 || health.Health.Test[0] == "NONE" {
				t.Error("the runtime stage has no HEALTHCHECK")
			}
			if !entry {
				t.Error("the runtime stage has no ENTRYPOINT or CMD")
			}
			if img.python {
				base := p.baseImage(final)
				installs := slices.ContainsFunc(final.Commands, func(c instructions.Command) bool {
					r, ok := c.(*instructions.RunCommand)
					return ok && strings.Contains(strings.Join(r.CmdLine, " "), "python3")
				})
				if !strings.Contains(base, "python") && !installs {
					t.Errorf("the runtime image (%s) has no Python for the scripts", base)
				}
				// SCRIPT_REPOSITORY_TYPE=git runs the git command line in the worker.
				if !slices.ContainsFunc(final.Commands, func(c instructions.Command) bool {
					r, ok := c.(*instructions.RunCommand)
					return ok && strings.Contains(strings.Join(r.CmdLine, " "), "install") && strings.Contains(strings.Join(r.CmdLine, " "), " git")
				}) {
					t.Error("the worker's runtime image does not install git (needed by the git script repository)")
				}
			}
			// The build stages compile without the workspace, as they must in the image.
			goworkOff := false
			for _, s := range p.stages[:len(p.stages)-1] {
				for _, c := range s.Commands {
					if e, ok := c.(*instructions.EnvCommand); ok {
						for _, kv := range e.Env {
							goworkOff = goworkOff || (kv.Key == "GOWORK" && kv.Value == "off")
						}
					}
				}
			}
			if !goworkOff {
				t.Error("no build stage sets GOWORK=off: inside the image the module must build on its own (replace lines)")
			}
		})
	}
}

// The Go builds the Dockerfiles run, run here the same way: each module on its own (GOWORK=off, its
// replace lines), static (CGO_ENABLED=0). A missing replace or go.sum entry fails here rather than in
// `docker build`.
func TestDockerfileGoBuildsWithoutTheWorkspace(t *testing.T) {
	t.Parallel()
	for _, img := range images {
		t.Run(img.module, func(t *testing.T) {
			t.Parallel()
			out := t.TempDir()
			for _, pkg := range img.packages {
				cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(out, filepath.Base(pkg)), pkg)
				cmd.Dir = filepath.Join(repoRoot, img.module)
				cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
				if b, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("GOWORK=off go build %s (in %s): %v\n%s", pkg, img.module, err, b)
				}
			}
		})
	}
}

// .dockerignore keeps local state and build output out of the build context (the repository root),
// and keeps what the Dockerfiles copy in it.
func TestDockerignore(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, strings.TrimSuffix(strings.TrimPrefix(l, "/"), "/"))
		}
	}
	for _, must := range []string{".git", ".local", "bin", ".tools"} {
		if !slices.Contains(patterns, must) {
			t.Errorf(".dockerignore does not exclude %s", must)
		}
	}
	for _, keep := range []string{"shared", "functions", "worker", "scripts"} {
		if slices.Contains(patterns, keep) {
			t.Errorf(".dockerignore excludes %s, which the images need", keep)
		}
	}
}

func TestPinned(t *testing.T) {
	t.Parallel()
	for ref, want := range map[string]bool{
		"golang:1.26.8-bookworm": true, "python:3.12-slim-bookworm": true, "alpine:3.22": true,
		"rabbitmq@sha256:0123": true, "localhost:5000/x:1.2": true,
		"golang": false, "golang:latest": false, "alpine:edge": false, "localhost:5000/x": false,
	} {
		if got := pinned(ref); got != want {
			t.Errorf("pinned(%q) = %v, want %v", ref, got, want)
		}
	}
}
