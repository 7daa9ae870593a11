// Package privatedir creates and checks the worker's own folders (the work folder, the per-process scratch
// folder, the environment cache, the script cache) so that nothing another user planted there is used.
//
// A folder the worker creates is its own and closed to others (0700, or 0711 where scripts run as another
// user and must traverse it). A folder that exists already is used only when it is a real folder (not a
// symbolic link), owned by the worker's effective user, and not writable by group or others; otherwise the
// worker refuses it with an error that names the folder, its owner and its mode. Predictable paths under a
// shared /tmp (/tmp/scrape-worker-<id>) are exactly what another local user could pre-create, so the check
// is what makes them safe.
package privatedir
