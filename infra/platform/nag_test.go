package platform

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// TestNagFindsNoUnsuppressedErrors: cdk-nag's AwsSolutions pack reports no error that is not suppressed
// with a reason.
func TestNagFindsNoUnsuppressedErrors(t *testing.T) {
	forEachStage(t, func(t *testing.T, s *synthesized) {
		nag := assertions.Match_StringLikeRegexp(jsii.String("(AwsSolutions|CdkNagValidationFailure).*"))
		for _, e := range messages(s.annotations.FindError(jsii.String("*"), nag)) {
			t.Error(e)
		}
		for _, w := range messages(s.annotations.FindWarning(jsii.String("*"), nag)) {
			t.Logf("warning %.200s", w)
		}
	})
}

// TestSynthesisNeedsNoDocker: the worker image is a Dockerfile asset, which synthesis only hashes and
// stages; the fake docker on CDK_DOCKER records any call.
func TestSynthesisNeedsNoDocker(t *testing.T) {
	a := synth(t)
	if b, err := os.ReadFile(a.dockerMarker); err == nil {
		t.Fatalf("synthesis called docker: %s", strings.TrimSpace(string(b)))
	}
}

// messages renders synthesis messages as "construct path: message". It reads them through their JSON
// form: the Go binding's message type is deprecated in favour of one that has no Go binding yet.
func messages(ms any) []string {
	raw, err := json.Marshal(ms)
	if err != nil {
		panic(err)
	}
	var decoded []struct {
		ID    string `json:"id"`
		Entry struct {
			Data any `json:"data"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &decoded); err != nil {
		panic(err)
	}
	out := make([]string, 0, len(decoded))
	for _, m := range decoded {
		out = append(out, fmt.Sprintf("%s: %v", m.ID, m.Entry.Data))
	}
	return out
}

// TestSynthesisNeedsNoLookups: the cloud assembly asks for no context lookup (the CLI would need AWS
// credentials for it): the stages name their AZs, including for a pinned account.
func TestSynthesisNeedsNoLookups(t *testing.T) {
	a := synth(t)
	raw, err := os.ReadFile(filepath.Join(a.outdir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		Missing []struct {
			Key string `json:"key"`
		} `json:"missing"`
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatal(err)
	}
	for _, m := range manifest.Missing {
		t.Errorf("synthesis needs the context lookup %s", m.Key)
	}
}
