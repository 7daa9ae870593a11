package runner

import (
	"slices"
	"strings"
	"testing"
)

// TestEnvNamesTheRunToTheEgressProxy checks the proxy variables of a child: the proxy URL carries the run's
// name (script and request id; script only for a warm runner, which serves many requests), so the proxy can
// attribute its refusals (egress.RunProxyURL).
func TestEnvNamesTheRunToTheEgressProxy(t *testing.T) {
	t.Parallel()
	r := &Runner{cfg: Config{ProxyURL: "http://127.0.0.1:3128"}, path: "/usr/bin"}
	for _, tt := range []struct {
		job  Job
		want string
	}{
		{Job{ScriptName: "fetch", RequestID: "req-1"}, "http://fetch:req-1@127.0.0.1:3128"},
		{Job{ScriptName: "fetch", RequestID: "req-1", Warm: true}, "http://fetch:warm@127.0.0.1:3128"},
	} {
		env := r.env(tt.job, "/tmp/run")
		for _, k := range []string{"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"} {
			if !slices.Contains(env, k+"="+tt.want) {
				t.Errorf("%+v: env %q lacks %s=%s", tt.job, env, k, tt.want)
			}
		}
	}
	if env := (&Runner{path: "/usr/bin"}).env(Job{ScriptName: "fetch"}, "/tmp/run"); slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "http_proxy=") }) {
		t.Errorf("no proxy configured, yet env %q names one", env)
	}
}
