//go:build linux

package jailhelper

import (
	"errors"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The helper's init catches a start with its argv[0] and a Spec: this test binary, started so with a spec
// that is not JSON, must exit 125 saying so (without the hook it would run no test and exit 0).
func TestInitCatchesTheHelpersStart(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := &exec.Cmd{Path: self, Args: []string{Arg0, "-test.run=^$"}, Env: append(os.Environ(), Env+"={not json")}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 125 || !strings.Contains(string(out), "bad spec") {
		t.Fatalf("the helper's start: %v, %q; want exit status 125 and \"bad spec\"", err, out)
	}
	// Without the spec, the same argv[0] is an ordinary start: the tests run.
	cmd = &exec.Cmd{Path: self, Args: []string{Arg0, "-test.run=^$"}, Env: os.Environ()}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("a start without %s: %v, %q", Env, err, out)
	}
}

// The package imports only these standard packages, each initialized early in any binary: a heavier
// import (net/http, a third-party module) would hold the helper's init back until that import's own
// dependencies are initialized, and every contained start would pay for them again.
func TestImportsStayLight(t *testing.T) {
	allowed := []string{"encoding/json", "fmt", "os", "runtime", "strconv", "strings", "syscall", "unsafe"}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range parsed.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !slices.Contains(allowed, path) {
				t.Errorf("%s imports %s: the helper's init would wait for it (allowed: %v)", f, path, allowed)
			}
		}
	}
}
