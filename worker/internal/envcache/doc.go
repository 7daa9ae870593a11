// Package envcache gives each script's requirements.txt its own Python virtual environment, built once per
// worker and shared by every script with the same requirements.
//
// An environment is keyed by a hash of the normalised requirements file, the interpreter's exact version
// and its platform tag, so a new Python or a new architecture never reuses an old build.
//
// Building: a venv is created without pip (≈0.1 s instead of ≈4 s) in a temporary folder next to its final
// place and filled by the worker interpreter's own pip through `pip --python`, with pip's index settings
// (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS, PIP_NO_INDEX, ...) passed through so air-gapped
// installs from a wheel folder work. Console-script shebangs are rewritten to the final path, a marker file
// is written last, and the folder is renamed into place: a crash mid-build leaves only a temporary folder,
// which the next start removes, never a half-built environment under its key.
//
// Concurrent requests for the same environment wait for one build (its context is the cache's, not the
// first caller's, so a caller giving up does not waste the build). A failed install is remembered for a
// short time so a broken requirements file does not run pip on every request. An environment whose
// interpreter no longer starts (say the base Python was upgraded in place) is detected on first use and
// rebuilt. Environments in use are leased; when the cache grows past its size bound, the least recently
// used unleased ones are removed.
package envcache
