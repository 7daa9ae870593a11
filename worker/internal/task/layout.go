package task

import (
	"os"
	"path/filepath"

	"github.com/scrapeplatform/platform/worker/internal/manifest"
	"github.com/scrapeplatform/platform/worker/internal/repository"
)

// layout is what a script folder's manifest and requirements say. Equal content means an equal layout, so
// it is read from disk once per content rather than on every task.
type layout struct {
	manifest    manifest.Manifest
	manifestErr error
	reqFile     string // "" without requirements.txt
}

// maxLayouts bounds the layout memo; past it the memo starts over (old contents are rarely asked again).
const maxLayouts = 1024

// layoutOf returns the layout of script, read from its folder on the first task of its content.
func (h *Handler) layoutOf(script repository.Script) layout {
	key := script.Dir + "\x00" + script.Content
	if script.Content != "" {
		h.layoutsMu.Lock()
		l, ok := h.layouts[key]
		h.layoutsMu.Unlock()
		if ok {
			return l
		}
	}
	var l layout
	l.manifest, l.manifestErr = manifest.Load(script.Dir)
	if reqFile := filepath.Join(script.Dir, "requirements.txt"); fileExists(reqFile) {
		l.reqFile = reqFile
	}
	if script.Content != "" {
		h.layoutsMu.Lock()
		if h.layouts == nil || len(h.layouts) >= maxLayouts {
			h.layouts = map[string]layout{}
		}
		h.layouts[key] = l
		h.layoutsMu.Unlock()
	}
	return l
}

// fileExists reports whether path is a regular file.
func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
