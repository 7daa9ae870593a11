package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/scrapeplatform/platform/shared/contract"
	"github.com/scrapeplatform/platform/worker/internal/manifest"
	"github.com/scrapeplatform/platform/worker/internal/repository"
)

// maxRequirementsBytes bounds requirements.txt.
const maxRequirementsBytes = 64 << 10

// script is a checked script folder, ready to bundle.
type script struct {
	name     string
	dir      string
	files    []repository.PackedFile
	ignored  []string
	warnings []string
}

func (s *script) size() int64 {
	var n int64
	for _, f := range s.files {
		n += f.Size
	}
	return n
}

// checkScript checks a script folder against the script contract (scripts/README.md) and reports every
// problem at once. name "" means the folder's own name.
func checkScript(dir, name string, lim repository.Limits) (*script, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%s is not a folder", dir)
	}
	if name == "" {
		name = filepath.Base(abs)
	}
	s := &script{name: name, dir: abs}
	var problems []error
	if err := contract.ValidateScriptName(name); err != nil {
		problems = append(problems, fmt.Errorf("%v (the folder's name is the script's name; or use --name)", err))
	}
	s.files, s.ignored, err = repository.Collect(abs, lim)
	if err != nil {
		return nil, errors.Join(append(problems, err)...)
	}
	has := map[string]bool{}
	for _, f := range s.files {
		has[f.Path] = true
	}
	if !has[repository.EntryPoint] {
		problems = append(problems, fmt.Errorf("no %s in %s", repository.EntryPoint, dir))
	} else if w, err := checkEntryPoint(filepath.Join(abs, repository.EntryPoint)); err != nil {
		problems = append(problems, err)
	} else if w != "" {
		s.warnings = append(s.warnings, w)
	}
	if has["requirements.txt"] {
		w, err := checkRequirements(filepath.Join(abs, "requirements.txt"))
		problems = append(problems, err)
		s.warnings = append(s.warnings, w...)
	}
	if has[manifest.File] {
		b, err := os.ReadFile(filepath.Join(abs, manifest.File))
		if err == nil {
			_, err = manifest.Parse(b)
		}
		problems = append(problems, err)
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	return s, nil
}

var defScrape = regexp.MustCompile(`(?m)^(async\s+)?def\s+scrape\s*\(`)

func checkEntryPoint(path string) (warning string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("%s is not UTF-8 text", repository.EntryPoint)
	}
	if !defScrape.Match(b) {
		return fmt.Sprintf("%s has no top-level `def scrape(` or `async def scrape(`", repository.EntryPoint), nil
	}
	return "", nil
}

var (
	requirementPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?` + // name
		`(\[[A-Za-z0-9._,\s-]*\])?` + // extras
		`\s*((===|==|~=|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+(\s*,\s*(===|==|~=|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+)*)?` + // versions
		`\s*(;.*)?$`) // environment marker
	hashOption = regexp.MustCompile(`\s+--hash[=\s]\S+`)
)

// checkRequirements accepts plain requirement lines (name, extras, versions, markers, --hash) and refuses
// pip options and direct references: where packages come from is the worker's decision (its index, its
// wheel folder), not a script's. Lines that are not pinned with == get a warning.
func checkRequirements(path string) (warnings []string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) > maxRequirementsBytes {
		return nil, fmt.Errorf("requirements.txt is larger than %d bytes", maxRequirementsBytes)
	}
	if !utf8.Valid(b) {
		return nil, errors.New("requirements.txt is not UTF-8 text")
	}
	var problems []error
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.Index(line, " #"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		req := hashOption.ReplaceAllString(line, "")
		switch {
		case strings.HasPrefix(line, "-"):
			problems = append(problems, fmt.Errorf("requirements.txt line %d: pip options are not allowed (%q)", n, line))
		case strings.Contains(line, "://") || strings.Contains(line, " @ ") || strings.HasPrefix(line, ".") || strings.HasPrefix(line, "/"):
			problems = append(problems, fmt.Errorf("requirements.txt line %d: URLs and paths are not allowed, only package names with versions (%q)", n, line))
		case strings.HasSuffix(line, "\\"):
			problems = append(problems, fmt.Errorf("requirements.txt line %d: line continuations are not allowed", n))
		case !requirementPattern.MatchString(req):
			problems = append(problems, fmt.Errorf("requirements.txt line %d: not a requirement like name==1.2.3 (%q)", n, line))
		case !strings.Contains(req, "=="):
			warnings = append(warnings, fmt.Sprintf("requirements.txt line %d: %q is not pinned (name==version); the worker installs whatever matches today", n, line))
		}
	}
	return warnings, errors.Join(problems...)
}
