// Package runner runs one scraping script once, in a child Python process, under limits, and turns whatever
// happens into a [Result]: completed with the script's JSON, failed with a stable [contract.Code], or timed
// out.
//
// # The child
//
// Every run starts a fresh interpreter (a forked warm runner starts from a template, which did: see "Warm
// and shared runners"):
//
//	<python> -I -S -u -B -c <runner.py> [--serve] <script_dir> <memory_limit_bytes> <max_result_bytes> <max_processes>
//
// One function (Runner.command) builds that child for cold runs and warm runners alike: arguments, the
// environment, the scratch folder, the pipes, SysProcAttr, WaitDelay and Cancel.
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
// runner.py first makes itself non-dumpable (prctl PR_SET_DUMPABLE 0, through ctypes): from then on
// processes of its own user (other scripts) can neither read nor write its memory (/proc/<pid>/mem), reopen
// its descriptors (/proc/<pid>/fd/N: a warm runner's request and result pipes) nor ptrace it; only root
// can. It then reads the request, drops stdin, sets resource limits (RLIMIT_CORE = 0 and, when configured,
// RLIMIT_AS, RLIMIT_NPROC and RLIMIT_FSIZE, the last from SCRAPER_MAX_FILE_BYTES, which it removes from its
// environment, with SIGXFSZ ignored so an oversized write fails with EFBIG), enables faulthandler, makes
// imports below the script's folder compile the source and ignore bytecode (an import hook of FileFinders
// without the sourceless loader: a planted __pycache__/*.pyc or bare .pyc never runs, while the standard
// library keeps its bytecode), puts the script's folder first on sys.path, imports scraper.py and
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
// The request travels on stdin as one JSON line, {"request_id": ..., "parameters": {...}, "timeout_ms": N,
// "deadline_ms": N} (encodeRequest): unlike argv or the environment it is not visible to other processes
// and has no small size limit. runner.py reads it and replaces fd 0 with /dev/null before the script is
// imported. A warm runner gets the same document, with the call's "nonce" added, as each request frame
// (warm.go).
//
// # Time budget
//
// Job.Timeout is the run's budget, computed by the caller (the worker derives it from the request's time
// budget). The worker owns the deadline: it kills the process group when Timeout has passed since the
// child started (cold) or since the request was sent (warm), whatever the script does. runner.py learns
// the budget too: timeout_ms is Timeout, deadline_ms the Unix time in milliseconds of the worker's kill.
// It uses them where Python can act itself: an `async def scrape` is awaited with a timeout (asyncio.wait) and
// cancelled CANCEL_MARGIN (0.25 s, at most a tenth of the budget) before the kill, so the coroutine's own
// cleanup (finally blocks, async with) runs; the run then ends as a timeout (status timeout,
// script_timeout) with the message naming the budget. A synchronous scrape cannot be interrupted from
// inside Python and is killed at the deadline as before.
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
// # Warm and shared runners
//
// A warm runner (Job.Warm) is started with --serve and reads frames (a 4-byte big-endian length, then the
// body) on fd 4 and answers on fd 3. The first frame, the hello, gives it the runner's nonce, the loop
// lag bound and how many threads to serve a plain def scrape in (Job.Threads; 0: one call at a time); it
// imports the script and answers {"ready": true, "async": bool}, or {"ready": true, "async": false,
// "threads": true} for a threads runner. Every answer starts with a
// 32-character nonce: the runner's for the ready document and heartbeats, the call's for a result. The
// nonces are random, per runner and per call, and known only to the worker and the runner, so a frame
// another process writes into the pipe through /proc/<pid>/fd matches no call in flight and the runner is
// stopped (its calls fail with script_crashed) rather than delivering it.
//
// A plain def scrape serves one call at a time (warm.go's pool of idle runners). Those runners are forked
// (fork.go): the first start of the script's warm key starts a template, a runner asked in its hello to
// become one, which imports the script, answers {"ready": true, "async": false, "template": true} and then
// forks a one-call runner for each request on its control socket (fd 5), instead of each runner starting
// an interpreter and importing the script (milliseconds instead of a hundred or more). The children share
// the template's containment (its user, its namespaces, its run folder and /tmp), as the calls of a shared
// runner share theirs, and nothing with another script's. WarmConfig.NoFork, and "isolation": "process",
// start every runner afresh. An async def scrape makes
// the runner shared (shared.go): runner.py runs one event loop, reads frames on a thread of its own and
// starts an asyncio task per call, each with its own budget (cancelled CANCEL_MARGIN before the worker's
// deadline, as in a cold run), its own result and its own output. Before the script is imported, runner.py
// replaces sys.stdout and sys.stderr (and so what logging writes) by writers that prefix each line written
// inside a call with 0x1e, the call's nonce and 0x1f, from a contextvar that each task holds; when the call
// ends, a line 0x1e nonce 0x1d on both streams marks its last line, and only then its answer is written.
//
// Under "isolation": "threads" a plain def scrape makes the runner shared too (a threads runner): runner.py
// starts WarmConfig.MaxThreads threads before it reports ready (a memory limit too small for them fails
// the start, naming WARM_RUNNER_MAX_THREADS), reads the frames on its main thread and hands each call to a
// free thread, which sets the call's contextvar (so its output is tagged as above), runs it and writes its
// own answer. There is no event loop: a watcher thread answers a call still running at its budget as a
// timeout whose traceback is its thread's stack, and a heartbeat thread reports how late it woke (it needs
// the interpreter lock, so a call that keeps the lock, such as one long C call, shows as lag and stops the
// runner with event_loop_blocked). A thread cannot be stopped: a call that timed out or was cancelled runs
// on unwatched, so the worker retires the runner (no new call; stopped once its other calls have ended).
// The worker strips the tags, logs each line with the call's request_id and keeps it in the call's tail;
// untagged lines (import time, subprocesses, threads without the call's context) are the script's. Many
// Run calls with the same warmKey (interpreter, script folder, content, memory limit, result limit) go to one runner, up
// to WarmConfig.MaxCalls each; calls of different keys never share a process. A caller whose ctx ends
// sends {"nonce": ..., "cancel": true}: that call's task alone is cancelled.
//
// The runner's loop sends a heartbeat every quarter of WarmConfig.LoopLagLimit (at most 0.5 s) with its lag
// and RSS. A lag past the limit, or silence for that long while calls are in flight (time.sleep inside
// async def), stops the runner: its calls fail with contract.CodeEventLoopBlocked. RSS past
// WarmConfig.MaxRSSBytes (as the runner reports it: a script can under-report, which only keeps its own
// runner alive; RLIMIT_AS holds regardless) retires the runner: it takes no new call and stops once its
// calls have ended. So do MaxRequests, a call that ignores its cancellation past its deadline, idleness
// past IdleTimeout and a newer content of the script. Shutdown retires every shared runner and waits for
// the calls in flight.
//
// What one script's concurrent calls share by design: the process, its globals, os.environ (no
// SCRAPER_REQUEST_ID), the working folder, the memory and process limits, and the nonces of each other's
// calls (they are in the process's memory). A call that exits the interpreter ends the others
// (script_crashed).
//
// # The process group
//
// The child starts as the leader of its own session (Setsid), so its session and process group ids are its
// pid and everything it starts belongs to the group unless it deliberately leaves (setpgid, setsid; see
// Containment for what happens then). The group is killed with SIGKILL:
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
// # Containment
//
// A process group holds only processes that stay in it. Config.Containment decides how the rest are caught,
// and how much of the machine a run sees ("auto" takes the first of these the worker can make, probing at
// New, namespaces for a root worker and userns for any other, and Runner.Containment reports which; where
// it settles for less than namespaces or userns it warns once with the reason):
//
//   - namespaces (root or CAP_SYS_ADMIN): pidns below, plus mount, network and IPC namespaces. The child is
//     the namespaces helper (package jailhelper: the worker's binary re-executed through /proc/self/exe,
//     caught in that package's init, which Go runs before most of the worker's packages: jail_linux.go is
//     the worker's side), which as root inside the new namespaces makes every mount private, mounts a
//     /proc of the run's PID namespace and tmpfs on /tmp, /var/tmp and /dev/shm (a quarter of the run's
//     memory limit each), an empty read-only tmpfs on the worker's HOME, its WorkDir and Config.HidePaths
//     (SCRIPT_HIDE_PATHS, /run/secrets by default; a file gets /dev/null), and binds back what the run
//     needs below them (the run folder read-write, the script folder and the interpreter's trees
//     read-only, each remount keeping the flags of the mount it copies), brings up the namespace's
//     loopback and listens there on the egress proxy's port. It hands that listener to the worker over a
//     socketpair (SCM_RIGHTS), whose proxy serves it (Config.ServeProxy): the run's http_proxy is
//     127.0.0.1:<port> inside, its only way out. The helper then drops to the script's user, sets
//     no_new_privs and Pdeathsig again, waits for the worker's go-ahead and executes the interpreter as
//     the namespace's PID 1. A failure at any step is reported over the socketpair and fails the run as
//     transient.
//   - userns (a non-root worker where the kernel allows unprivileged user namespaces; not under Docker's
//     default seccomp profile): the same, with the helper cloned into a user namespace of its own too
//     (CLONE_NEWUSER), which maps only the worker's uid and gid, each to itself, so the script keeps the
//     worker's uid number. The helper holds CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_NET_BIND_SERVICE and
//     CAP_SETPCAP there as ambient capabilities (they survive its execve although it is not root there)
//     and, once the mounts and the loopback are set up, drops every capability (bounding set, ambient,
//     effective, permitted, inheritable) and sets no_new_privs before it executes the interpreter: the
//     script cannot unmount or mount anything, and a user namespace it makes itself finds the run's mounts
//     locked. It shares the worker's uid but not its PID namespace, so it cannot signal or ptrace the
//     worker or anything outside its run; hiding HOME and WorkDir keeps the worker's own files (and other
//     runs' folders, the environment and script caches) out of its sight, but any other file the worker's
//     user may read elsewhere on the machine is the script's too. Config.Containment namespaces gets this
//     for a non-root worker too (Containment reports userns); RunAs and UIDRange stay refused (they need a
//     root worker). RLIMIT_NPROC counts a user's processes per user namespace (Linux 5.14): the limit is
//     the run's own, MaxProcesses beyond runner.py's init and the runner.
//   - pidns (root or CAP_SYS_ADMIN): the child
//     is started with CLONE_NEWPID. runner.py, finding itself PID 1, forks; the parent stays behind as the
//     namespace's init (no descriptors, no signal handlers, reaps orphans) and mirrors the runner's exit
//     (death by signal N as status 128+N). No process can leave a PID namespace, and when its init ends
//     (the runner finished, the group was killed, or the worker died and Pdeathsig fired) the kernel kills
//     every process in it: setsid and double-fork escapees, daemons and fork bombs included. Scripts see
//     small pids and cannot signal or ptrace anything outside their namespace (the worker included).
//   - session (the fallback; no privileges needed): the worker becomes a child subreaper
//     (PR_SET_CHILD_SUBREAPER), so an orphaned descendant is handed to the worker instead of init. When a
//     run ends, every process still in its session (setpgid escapees) is killed, pinned by a pidfd so a
//     recycled pid is never hit; and every child of the worker in a session other than the worker's that
//     is not a run leader (a setsid or double-fork escapee whose parent died) is killed and reaped,
//     repeatedly until none is left. A background sweep does the same every second, so such a process
//     dies within a second even while its run goes on. Run leaders are registered process-wide, under the
//     lock the sweeps take, so no sweep mistakes another run's leader for an escapee. What this mode cannot
//     do: if the worker itself is SIGKILLed, Pdeathsig kills each run's leader but not its descendants
//     (inside a container, the container's PID namespace dies with the worker and takes them along).
//     Orphans in the worker's own session (a double fork by pip or git) are neither killed nor reaped.
//
// A warm runner forked from a template (fork.go) is a run within the template's: it has the template's
// containment (its namespaces, its user, its limits), in a session of its own. When it ends, the worker
// kills what is left in its session and, under a PID namespace, every process the namespace's init adopted
// (what left the runner's session; the template's other children are runners and stay); in session mode
// the subreaper's sweeps catch escaped orphans as for any run, forked runners being registered leaders. A
// template's end ends its PID namespace, if it has one, and with it every runner forked from it; in
// session mode its runners carry on, handed to the worker.
//
// Config.MaxProcesses becomes RLIMIT_NPROC = (tasks the script's user runs now) + MaxProcesses: the kernel
// counts every process and thread of the user, so a fork bomb stops there with EAGAIN, which the failure
// message names. Under userns the kernel counts the run's own user namespace only (Linux 5.14 and later),
// and the limit is 2 (runner.py's init and the runner) + MaxProcesses. The kernel exempts root: a root worker must run scripts as other users (Config.UIDRange,
// SCRIPT_UID_RANGE: a uid per script, picked from its name; or Config.RunAs, SCRIPT_RUN_AS: one for all) for
// the limit to hold. The child starts with that uid and gid and no supplementary groups; its run folder is
// chowned to it and the work dir made traversable (0711). The scripts, the interpreter and the
// environments must be readable by that user; runner.py sets umask 077, so what a script creates is its
// own.
//
// # Secrets
//
// [protect.Process] (shared/protect), called early by the worker, zeroes the worker's original environment block (what
// /proc/<pid>/environ shows) and marks the worker non-dumpable, so a process of the same user can read none
// of its /proc files nor ptrace it. With RunAs the scripts run as another user and cannot read the worker's
// files (mode 0600 credentials, its HOME) either; without it, anything the worker's user may read, a script
// may read too, except, under userns, what the run's mount namespace hides (HOME, WorkDir, HidePaths).
//
// # The environment
//
// The worker's own environment holds broker and cloud credentials, so the child gets an explicit minimal
// one and nothing else: PATH (the interpreter's bin folder, then /usr/local/bin:/usr/bin:/bin), HOME and
// TMPDIR (a fresh per-run folder in the Runner's scratch folder, which is also the working directory and is
// removed after the run), LANG=C.UTF-8, PYTHONUNBUFFERED=1, PYTHONDONTWRITEBYTECODE=1, SCRAPER_REQUEST_ID and
// SCRAPER_SCRIPT_NAME.
//
// When Config.ProxyURL is set, http_proxy, https_proxy, HTTP_PROXY and HTTPS_PROXY name the worker's egress
// proxy (see package egress), and no_proxy is not set, so loopback and private addresses go through the
// proxy too, which refuses them. The URL carries the run's name (script and request id) as its user
// information, which HTTP libraries send as Proxy-Authorization, so the proxy can tell the worker why it
// refused the run's requests (egress.RunProxyURL, Proxy.Refusal). Outside the namespaces containment a
// client that ignores these variables, or a raw socket, bypasses the proxy: it then protects scripts from
// callers who choose URLs (SSRF), not the platform from a hostile script. Under namespaces nothing else
// leaves the run's network namespace.
//
// The minimal environment is hygiene, not a sandbox on its own; see Containment and Secrets for the rest,
// and the worker's README for what holds where.
//
// The interpreter is resolved once, in [New], to sys.executable as the interpreter reports it (a pyenv
// shim costs a bash script per start otherwise). Symlinks in that path are deliberately not resolved: a
// venv's bin/python is a symlink, and resolving it would leave the venv.
//
// # Folders
//
// WorkDir is private to the worker (package privatedir: created 0700, or 0711 with RunAs; an existing one
// that is a link, belongs to another user or is writable by others is refused). Each Runner makes a scratch
// folder of its own inside, scratch-<pid>-<random> (scratch.go), holds an flock on its .lock file while it
// lives, and creates the run folders there; Shutdown removes it (or leaves it to the last run still using
// it), and New removes the scratch folders whose lock nobody holds (their process is gone). With RunAs,
// once a run's processes are gone and no process of the scripts' user is left on the machine, what that
// user left at the top of /tmp, /var/tmp and /dev/shm is removed too (temp.go).
//
// # Lifecycle
//
// The worker's execution packages use one vocabulary. A part that keeps processes, goroutines or background
// work (the warm runner pool of a [Runner], the egress proxy, the environment cache's builds, a remote
// script repository's refreshes) stops with Shutdown(ctx) error: it stops taking new work, interrupts every
// wait of its own (reapers, successors starting, builds, refreshes), ends what it started, and waits for
// that to be over until ctx ends, when it returns ctx's error. Close() error remains only for a plain
// resource close with nothing to wait for. A nil Logger or Metrics in a Config gets a working default
// (discarding, recording nothing) in the constructor's withDefaults; nothing panics on a nil sink.
//
// Each package owns its settings: a Config (Options for repository) whose zero fields take the defaults
// of withDefaults, and a pure loader (LoadConfig, LoadOptions, LoadDefaults) that reads the environment
// variables documented in worker/README.md through a shared/config.Env, which collects every problem. What a
// loader needs from another part (the work folder, the concurrency, the worker id) is a parameter.
//
// The package needs Linux for its guarantees; other Unix systems build it without waitid, PR_SET_PDEATHSIG,
// PID namespaces, the subreaper sweep and protect.Process.
package runner
