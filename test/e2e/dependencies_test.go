package e2e

import (
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/scrapeplatform/platform/shared/wheeltest"
	"github.com/scrapeplatform/platform/test/testkit"
)

// TestConflictingDependencies: two scripts need different versions of one package. Each runs on its own
// environment, concurrently, installed offline from a wheel folder (PIP_NO_INDEX + PIP_FIND_LINKS reach
// pip through the worker), and the worker's own interpreter never sees the package.
func TestConflictingDependencies(t *testing.T) {
	wheels := t.TempDir()
	wheeltest.Build(t, wheels, "conflictpkg", "1.0", "")
	wheeltest.Build(t, wheels, "conflictpkg", "2.0", "")
	e := start(t, 2, "PIP_NO_INDEX=1", "PIP_FIND_LINKS="+wheels)

	var wg sync.WaitGroup
	results := map[string][]response{}
	var mu sync.Mutex
	for round := range 3 {
		for _, script := range []string{"dep_v1", "dep_v2"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := scrapeWithDeps(t, e, script, map[string]any{"round": round})
				mu.Lock()
				results[script] = append(results[script], r)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	for script, want := range map[string]string{"dep_v1": "1.0", "dep_v2": "2.0"} {
		for _, r := range results[script] {
			if r.Code != 200 || r.Body["status"] != "completed" {
				t.Fatalf("%s: %d %s", script, r.Code, r.Raw)
			}
			data := r.Body["data"].(map[string]any)
			if data["version"] != want {
				t.Errorf("%s imported conflictpkg %v, want %s", script, data["version"], want)
			}
			if py := data["python"].(string); !strings.Contains(py, "/envs/") {
				t.Errorf("%s ran on %s, not on its own environment", script, py)
			}
		}
	}
	if out, err := exec.Command("python3", "-c", "import conflictpkg").CombinedOutput(); err == nil {
		t.Fatalf("conflictpkg leaked into the machine's interpreter: %s", out)
	}

	// Requirements that cannot be installed give a clear failure with pip's words.
	r := scrapeWithDeps(t, e, "dep_broken", nil)
	if r.Code != 200 || r.Body["status"] != "failed" || r.Body["error_code"] != "dependency_install_failed" ||
		!strings.Contains(r.Body["error_detail"].(string), "conflictpkg==9.9") {
		t.Fatalf("broken requirements: %d %s", r.Code, r.Raw)
	}
}

// scrapeWithDeps runs a script whose requirements the worker may still have to install (several venvs
// are built at once here), retrying as a caller is told to (testkit.RetryWhileInstalling).
func scrapeWithDeps(t *testing.T, e *env, script string, params any) response {
	t.Helper()
	var r response
	testkit.RetryWhileInstalling(t, script, func() (int, string) {
		r = e.scrape(t, script, params, maxTimeout)
		code, _ := r.Body["error_code"].(string)
		return r.Code, code
	})
	return r
}
