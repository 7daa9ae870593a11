package manifest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scrapeplatform/platform/shared/config"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		ok   bool
		want Manifest
	}{
		{`{}`, true, Manifest{}},
		{`{"description":"d","timeout":12.5,"isolation":"process","memory_limit_mb":256,"concurrency":2}`, true,
			Manifest{Description: "d", Timeout: 12.5, Isolation: Process, MemoryLimitMB: 256, Concurrency: 2}},
		{`{"isolation":"threads"}`, true, Manifest{Isolation: Threads}},
		{`{"isolation":"container"}`, false, Manifest{}},
		{`{"timeout":-1}`, false, Manifest{}},
		{`{"timeout":1e9}`, false, Manifest{}},
		{`{"concurrency":-3}`, false, Manifest{}},
		{`{"unknown":1}`, false, Manifest{}},
		{`{"timeout":"5"}`, false, Manifest{}},
		{`{} {}`, false, Manifest{}},
		{`[]`, false, Manifest{}},
		{strings.Repeat(" ", MaxBytes+1), false, Manifest{}},
	} {
		got, err := Parse([]byte(tc.in))
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("Parse(%.40q) = %+v, %v", tc.in, got, err)
		}
	}
}

func TestLoadMissingGivesDefaults(t *testing.T) {
	t.Parallel()
	m, err := Load(t.TempDir())
	if err != nil || m != (Manifest{}) {
		t.Fatalf("%+v %v", m, err)
	}
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, File), []byte(`{"isolation":"nope"}`), 0o644)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "isolation") {
		t.Fatalf("bad manifest: %v", err)
	}
}

// FuzzParse: manifests come from script authors; parsing must never panic and anything accepted must be
// within bounds.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"timeout":5,"isolation":"warm","memory_limit_mb":100,"concurrency":1}`))
	f.Add([]byte(`{"timeout":NaN}`))
	f.Add([]byte(`{"description":"\u0000"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		if (m.Isolation != "" && m.Isolation != Warm && m.Isolation != Process) || m.Timeout < 0 || m.Timeout > 900 || m.Concurrency < 0 || m.MemoryLimitMB < 0 {
			t.Fatalf("accepted out-of-range manifest %+v", m)
		}
	})
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()
	e := config.NewEnv(func(string) string { return "" })
	if d := LoadDefaults(e); d.Isolation != Warm || e.Err() != nil {
		t.Fatalf("defaults: %+v %v", d, e.Err())
	}
	e = config.NewEnv(func(k string) string { return map[string]string{"SCRIPT_ISOLATION": "process"}[k] })
	if d := LoadDefaults(e); d.Isolation != Process || e.Err() != nil {
		t.Fatalf("process: %+v %v", d, e.Err())
	}
	e = config.NewEnv(func(k string) string { return map[string]string{"SCRIPT_ISOLATION": "vm"}[k] })
	if LoadDefaults(e); e.Err() == nil || !strings.Contains(e.Err().Error(), "SCRIPT_ISOLATION") {
		t.Fatalf("vm accepted: %v", e.Err())
	}
}
