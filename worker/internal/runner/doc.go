// Package runner runs one scraping script once, in a child Python process, under limits, and turns whatever
// happens into a [Result]: completed with the script's JSON, failed with a stable [contract.Code], or timed
// out.
//
// # The child
//
// Every run starts a fresh interpreter:
//
//	<python> -I -S -u -B -c <runner.py> <script_dir> <memory_limit_bytes> <max_result_bytes>
//
// runner.py is embedded in the binary and handed over with -c rather than written to disk: a script runs
// with the worker's uid and could otherwise rewrite the runner that the next customer's script runs under.
//
//   - -I (isolated mode) makes the interpreter ignore every PYTHON* variable and the user's site-packages,
//     and keeps the current directory off sys.path.
//   - -S skips the site module: the interpreter's own site-packages (and the .pth start-up hooks found
//     there, which can cost tens of milliseconds per start) stay out. A script sees the standard library
//     and nothing else, the same on a laptop with packages installed globally as in the worker image;
//     packages a script needs come from its own requirements.txt, whose environment's site folder is
//     added explicitly (issue 3), so one script's packages never reach another.
//   - -u and -B are the flag forms of PYTHONUNBUFFERED and PYTHONDONTWRITEBYTECODE, which -I makes the
//     interpreter ignore. The variables are still set, for Python programs the script starts.
//
// runner.py reads the request, drops stdin, sets resource limits (RLIMIT_CORE = 0 and, when configured,
// RLIMIT_AS), enables faulthandler, puts the script's folder first on sys.path, imports scraper.py and
// calls scrape(params), running it with asyncio.run when it returns an awaitable (async def). It then
// encodes the value with json.dumps(allow_nan=False), checks its size, writes the result and leaves with
// os._exit, so neither atexit handlers nor threads the script left running can hold the run open.
//
// RLIMIT_AS bounds address space, not resident memory, and per process: every thread stack and every
// mapping counts, so runtimes that reserve large areas up front (headless browsers, some BLAS builds) need
// a generous limit, and each process the script starts gets a limit of its own. A script that hits it
// usually sees MemoryError (reported as script_error); the kernel's OOM killer, if it strikes first, shows
// as script_crashed with signal 9.
//
// # Three channels
//
// The request travels on stdin as one JSON line, {"parameters": {...}}: unlike argv or the environment it
// is not visible to other processes and has no small size limit. runner.py reads it and replaces fd 0 with
// /dev/null before the script is imported.
//
// The result travels on a dedicated pipe, fd 3 in the child (os/exec ExtraFiles), as one JSON document:
// {"ok": true, "data": ...} or {"ok": false, "kind": ..., "type": ..., "message": ..., "traceback": ...}.
// runner.py moves it to a non-inheritable descriptor before importing the script, so programs the script
// starts do not inherit it. The document is untrusted input (the script runs in the same process and can
// write to the pipe), so parseResult checks everything and the worker stops reading, and kills the
// process group, once the pipe carries more than MaxResultBytes plus a small allowance for the envelope.
//
// stdout and stderr are the script's own: print() and logging go there, and nothing a script prints can be
// mistaken for its result. The worker reads both line by line, logs each line (keys request_id, script,
// stream) up to a per-run budget, and keeps the last MaxOutputBytes as [Result.OutputTail], which also
// goes into the Detail of every failure. Past the budget it keeps draining the pipes, so a script that
// prints gigabytes neither blocks nor exhausts memory; it logs that lines were dropped.
//
// # The process group
//
// The child starts in its own process group (Setpgid), so its pgid is its pid and everything it starts
// belongs to the group unless it deliberately leaves (setsid). The group is killed with SIGKILL:
//
//   - when the job's timeout passes, the caller's ctx ends, or the result pipe overflows (cmd.Cancel);
//   - right after the child exits on its own, so subprocesses it left behind die with it.
//
// On Linux the worker waits for the child with waitid(WNOWAIT), kills the group while the child is still
// an unreaped zombie, and only then reaps it: the pgid cannot have been reused by an unrelated process
// when the signal is sent. The child also gets PR_SET_PDEATHSIG = SIGKILL, so it dies if the worker dies;
// the goroutine that starts it stays locked to its OS thread until the child is reaped, because Linux
// delivers that signal when the parent thread, not the parent process, exits.
//
// stdout, stderr and the result are os.Pipe pairs that the worker reads itself, not pipes managed by
// os/exec, so Wait returns as soon as the child exits, even while a grandchild still holds the write ends.
// After the group is killed the readers get EOF; a process that escaped the group cannot hold them for
// longer than KillGrace, after which read deadlines end them. cmd.WaitDelay is set to KillGrace too.
//
// # The environment
//
// The worker's own environment holds broker and cloud credentials, so the child gets an explicit minimal
// one and nothing else: PATH (the interpreter's bin folder, then /usr/local/bin:/usr/bin:/bin), HOME and
// TMPDIR (a fresh per-run folder under WorkDir, which is also the working directory and is removed after
// the run), LANG=C.UTF-8, PYTHONUNBUFFERED=1, PYTHONDONTWRITEBYTECODE=1, SCRAPER_REQUEST_ID and
// SCRAPER_SCRIPT_NAME.
//
// This is hygiene, not a sandbox: the script runs with the worker's uid, so it can read the worker's
// /proc/<pid>/environ, signal other processes of that uid, and leave the group with setsid. Untrusted
// scripts need a separate uid, a container or a VM around the worker as well.
//
// The interpreter is resolved once, in [New], to sys.executable as the interpreter reports it (a pyenv
// shim costs a bash script per start otherwise). Symlinks in that path are deliberately not resolved: a
// venv's bin/python is a symlink, and resolving it would leave the venv.
//
// The package needs Linux for its guarantees; other Unix systems build it without waitid and
// PR_SET_PDEATHSIG.
package runner
