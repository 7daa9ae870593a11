// Package repository resolves script names to script folders on local disk. Every repository type hands
// the worker the same thing: a Script with a folder holding scraper.py and a version string that
// identifies its content (replies report it as script_version).
//
// # Types
//
//   - local: a folder with one folder per script (Local). Version: a hash of the files, hashed again only
//     when a file's name, size or modification time changes. On Linux, inotify watches the folders a
//     script was resolved from, and a script with no change seen is not walked again (for up to a second,
//     for shared folders inotify cannot see into): an edit still shows on the very next task.
//   - s3: one bundle object per script, <prefix><name>.tar.gz. Version: the object's VersionId in a
//     versioned bucket (recommended), otherwise "etag:<ETag>".
//   - git: the folder [<subdir>/]<name>/ at the fetched commit of a ref. Version: "git:<commit>:<tree>"
//     (the commit and the first 12 digits of the folder's tree hash).
//   - http: one bundle per script at <base URL><name>.tar.gz. Version: "etag:<ETag>", else
//     "modified:<Last-Modified>", else "sha256:<digest of the bundle>".
//
// Script names are checked (contract.ValidateScriptName) before any lookup, so no name reaches a path, a
// key or a URL with "..", "/" or a leading dot. Unknown names are ErrNotFound.
//
// # Bundles
//
// A bundle is a gzip-compressed tar of one script folder, entries relative to the folder ("scraper.py",
// "lib/helper.py"; a leading "./" is accepted, so `tar -C DIR -czf NAME.tar.gz .` makes one). One object
// per script means publishing a script is one atomic object write, and the object's own identity (S3
// VersionId, HTTP ETag) is the version. Only regular files and folders are allowed; hidden entries and
// __pycache__ are left out. scrapectl's bundles also carry their SHA-256 in the object metadata
// (x-amz-meta-sha256), which the worker checks. Extraction treats the archive as hostile: see ExtractTar.
//
// # The cache (s3, git, http)
//
// Remote keeps fetched copies under the cache folder:
//
//	<cache>/<name>/current.json   the copy in use: version, validators, inventory (path, size, sha256)
//	<cache>/<name>/<key>/         an extracted copy; key is a hash of its inventory
//	<cache>/<name>/.tmp-*/        a download in progress
//	<cache>/.git-<hash>/          the git type's bare mirror
//
// Rules:
//   - A resolved script is served from memory for the TTL; then the next Resolve asks the remote,
//     conditionally (S3 HEAD compared with the cached VersionId/ETag, HTTP If-None-Match and
//     If-Modified-Since, git fetch plus the folder's tree hash). Invalidate forces the question (the
//     worker calls it on SIGHUP).
//   - One refresh per script at a time: concurrent Resolves of a script wait for the same refresh. It runs
//     under its own timeout, so a caller that gives up does not cancel it for the others.
//   - A download goes to a temporary folder, is checked (announced size and SHA-256, gzip CRC, safe
//     extraction within the limits, scraper.py present) and only then renamed into place, so nothing
//     half-downloaded or corrupted is ever run. A copy is checked against its inventory each time it is
//     revalidated and when a new process first uses it; a damaged copy is downloaded again.
//   - When the remote cannot be reached (or serves a bad bundle) and a good copy exists, the copy is
//     served, with a warning in the log and scraping_script_cache_stale_total counting it; the remote is
//     asked again after the TTL. Without a copy the resolve fails (internal_error).
//   - "No such script" is remembered for min(TTL, 5s).
//   - A replaced copy stays on disk for the longest request timeout plus a minute, so runs that started on
//     it finish on it; a restarted worker cleans up what its predecessor left. The cache folder is locked:
//     one worker process per folder.
package repository
