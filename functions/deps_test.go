package functions_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestEdgesLinkOnlyTheirOwnDependencies asserts, with go list -deps, that each binary links its own edge
// and not the other's: the local gateway no Lambda runtime, the Lambda bootstrap no Prometheus client, and
// neither the CDK (which only infra/ may import).
func TestEdgesLinkOnlyTheirOwnDependencies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pkg       string
		tags      string
		forbidden []string
		required  []string
	}{
		{"./cmd/gateway-local", "",
			[]string{"github.com/aws/aws-lambda-go", "github.com/awslabs/aws-lambda-go-api-proxy", "github.com/aws/aws-cdk-go"},
			[]string{"github.com/prometheus/client_golang/prometheus", "github.com/scrapeplatform/platform/functions/gateway/localedge"}},
		{"./cmd/gateway", "lambda.norpc",
			[]string{"github.com/prometheus/client_golang", "github.com/aws/aws-cdk-go", "github.com/scrapeplatform/platform/functions/gateway/localedge"},
			[]string{"github.com/aws/aws-lambda-go/lambda", "github.com/scrapeplatform/platform/functions/gateway/lambdaedge"}},
		{"./cmd/brokerusers", "lambda.norpc",
			[]string{"github.com/prometheus/client_golang", "github.com/aws/aws-cdk-go", "github.com/scrapeplatform/platform/functions/gateway"},
			[]string{"github.com/aws/aws-lambda-go/cfn", "github.com/scrapeplatform/platform/shared/brokerusers"}},
	} {
		args := []string{"list", "-deps"}
		if tc.tags != "" {
			args = append(args, "-tags", tc.tags)
		}
		out, err := exec.Command("go", append(args, tc.pkg)...).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", tc.pkg, err, out)
		}
		deps := strings.Fields(string(out))
		has := func(prefix string) bool {
			for _, d := range deps {
				if d == prefix || strings.HasPrefix(d, prefix+"/") {
					return true
				}
			}
			return false
		}
		for _, f := range tc.forbidden {
			if has(f) {
				t.Errorf("%s links %s", tc.pkg, f)
			}
		}
		for _, r := range tc.required {
			if !has(r) {
				t.Errorf("%s does not link %s (is the test still looking at the right binary?)", tc.pkg, r)
			}
		}
	}
}
