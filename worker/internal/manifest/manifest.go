// Package manifest reads a script's optional manifest.json: per-script settings that script authors ship
// with the script. A manifest is untrusted input: it is size-bounded, strictly decoded, and every value is
// range-checked, and a bad manifest fails the scrape with a message naming the problem.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/scrapeplatform/platform/shared/config"
)

// File is the manifest's name inside a script folder.
const File = "manifest.json"

// MaxBytes bounds a manifest's size.
const MaxBytes = 64 << 10

// Isolation modes.
const (
	// Warm: a long-lived runner imports the script once and serves its requests (default): one at a time for
	// a plain def scrape, many at once, one asyncio task each, for an async def scrape (a shared runner).
	Warm = "warm"
	// Process: a fresh process per request; nothing survives between requests.
	Process = "process"
	// Threads: as Warm, but a plain def scrape is shared too: one runner serves many of its calls at once,
	// each in a thread of its own. For blocking, I/O-bound scripts whose code is thread-safe: threads cost
	// far less CPU per call than a process each. A call past its time budget cannot be stopped in a thread:
	// it times out, and its runner takes no new call and is stopped once its other calls have ended.
	Threads = "threads"
)

// Manifest holds a script's settings. Zero values mean "use the worker's default".
type Manifest struct {
	Description string `json:"description,omitempty"`
	// Timeout is the script's default timeout in seconds, used when the caller names none. It can only
	// shorten what the caller's deadline allows.
	Timeout float64 `json:"timeout,omitempty"`
	// Isolation is "warm", "threads" or "process"; empty means the worker's default (SCRIPT_ISOLATION).
	Isolation string `json:"isolation,omitempty"`
	// MemoryLimitMB overrides the worker's SCRIPT_MEMORY_LIMIT_MB for this script.
	MemoryLimitMB int `json:"memory_limit_mb,omitempty"`
	// Concurrency caps how many runs of this script one worker runs at once, shared runners' calls included
	// (0: no cap beyond the slots).
	Concurrency int `json:"concurrency,omitempty"`
}

// Load reads dir/manifest.json. A missing manifest gives the defaults.
func Load(dir string) (Manifest, error) {
	f, err := os.Open(filepath.Join(dir, File))
	if errors.Is(err, os.ErrNotExist) {
		return Manifest{}, nil
	}
	if err != nil {
		return Manifest{}, fmt.Errorf("read %s: %w", File, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err != nil {
		return Manifest{}, fmt.Errorf("read %s: %w", File, err)
	}
	return Parse(b)
}

// Parse decodes and checks a manifest.
func Parse(b []byte) (Manifest, error) {
	if len(b) > MaxBytes {
		return Manifest{}, fmt.Errorf("%s is larger than %d bytes", File, MaxBytes)
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%s is not valid: %v", File, err)
	}
	if dec.More() {
		return Manifest{}, fmt.Errorf("%s holds more than one JSON value", File)
	}
	var errs []error
	if m.Isolation != "" && m.Isolation != Warm && m.Isolation != Threads && m.Isolation != Process {
		errs = append(errs, fmt.Errorf("isolation must be %q, %q or %q, got %q", Warm, Threads, Process, m.Isolation))
	}
	if m.Timeout < 0 || m.Timeout > 900 || m.Timeout != m.Timeout {
		errs = append(errs, fmt.Errorf("timeout must be between 0 and 900 seconds, got %g", m.Timeout))
	}
	if m.MemoryLimitMB < 0 || m.MemoryLimitMB > 1<<20 {
		errs = append(errs, fmt.Errorf("memory_limit_mb must be between 0 and %d, got %d", 1<<20, m.MemoryLimitMB))
	}
	if m.Concurrency < 0 || m.Concurrency > 1024 {
		errs = append(errs, fmt.Errorf("concurrency must be between 0 and 1024, got %d", m.Concurrency))
	}
	if err := errors.Join(errs...); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", File, err)
	}
	return m, nil
}

// Defaults are the worker's values for what a manifest leaves out.
type Defaults struct {
	// Isolation is used for scripts whose manifest names none: Warm, Threads or Process (SCRIPT_ISOLATION).
	Isolation string
}

// LoadDefaults reads the worker's defaults for manifests from the environment (worker/README.md,
// "Configuration"): SCRIPT_ISOLATION, "warm", "threads" or "process", default "warm". e collects every
// problem.
func LoadDefaults(e *config.Env) Defaults {
	return Defaults{Isolation: e.OneOf("SCRIPT_ISOLATION", Warm, Warm, Threads, Process)}
}
