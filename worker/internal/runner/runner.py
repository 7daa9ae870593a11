# Runs one scraping script once, or serves its calls as a warm runner (--serve; see serve()), for the scrape
# worker. doc.go in this folder describes the protocol; this file is embedded in the worker binary and passed
# to the interpreter with -c.
#
#   python -I -S -u -B -c <this file> <script_dir> <memory_limit_bytes> <max_result_bytes> <max_processes>
#
# Started as PID 1 of a PID namespace of its own (the worker's pidns containment), the process forks first:
# the parent stays behind as the namespace's init (it reaps orphans and, when the runner ends, leaves, which
# makes the kernel kill everything left in the namespace) and the child does the work.
#
# Before anything else the process makes itself non-dumpable (prctl PR_SET_DUMPABLE 0): processes of the
# same user (other scripts) can then neither read nor write its memory (/proc/<pid>/mem), reopen its
# descriptors (/proc/<pid>/fd/N) nor ptrace it. RLIMIT_FSIZE bounds every file the script writes
# (SCRAPER_MAX_FILE_BYTES in the environment, removed from it before the script runs); SIGXFSZ is ignored so
# a write past it fails with EFBIG instead of killing the process. Code below the script's folder is imported
# from source only: bytecode there (__pycache__/*.pyc, a bare .pyc) never runs.
#
#   stdin   one JSON line {"request_id": "...", "parameters": {...}, "timeout_ms": N, "deadline_ms": N};
#           replaced by /dev/null before the script is imported
#   fd 3    the result: one JSON document, written once, after which the process exits at once
#   stdout  the script's own output (print); the worker logs it and never parses it
#   stderr  likewise
#
# Result documents:
#   {"ok": true, "data": <the value scrape returned>}
#   {"ok": false, "kind": "exception", "type": "ValueError", "message": "...", "traceback": "..."}
#   {"ok": false, "kind": "invalid_output", "type": "set", "message": "..."}
#   {"ok": false, "kind": "too_large", "size": 1234567, "limit": 409600}
#   {"ok": false, "kind": "timeout", "message": "...", "traceback": "..."}   (an async script's coroutine was
#           cancelled at its time budget; see below)
#   {"ok": false, "kind": "setup", "message": "..."}   (the runner itself failed; not the script's fault)
#
# Time budget: timeout_ms is the run's budget and deadline_ms the Unix time (ms) at which the worker kills the
# process group. An `async def scrape` is awaited with a timeout (asyncio.wait) and cancelled CANCEL_MARGIN before
# the deadline, so its own cleanup (finally, async with) runs and the run ends as a timeout whose traceback
# is where the coroutine was; a
# synchronous scrape cannot be interrupted from inside and is killed by the worker at the deadline.
# A script that exits (sys.exit, os._exit, a signal) writes no document; the worker reports its exit status.
#
# Python 3.8+ and the standard library only.

import errno
import json
import os
import sys

RESULT_FD = 3
REQUEST_FD = 4  # serve mode only
TEMPLATE_FD = 5  # serve mode, when the hello asks for a template: the control socket (serve_template)
MAX_REQUEST_BYTES = 16 << 20
SCRIPT_FILE = "scraper.py"
MAX_MESSAGE_CHARS = 2048
MAX_TRACEBACK_CHARS = 4096
MAX_TYPE_CHARS = 200
# Bounds on the walk that explains why a result is not JSON-serialisable.
MAX_EXPLAIN_DEPTH = 200
MAX_EXPLAIN_NODES = 100000
# How long before the worker's kill an async script's coroutine is cancelled: at most this, and at most a
# tenth of the budget. The worker still kills the process group at the deadline.
CANCEL_MARGIN = 0.25


# Set by the __main__ block from the worker's environment (SCRAPER_MAX_FILE_BYTES), before the script runs.
MAX_FILE_BYTES = 0
# Why the runner could not make itself non-dumpable, if it could not; set_limits refuses to go on then.
PROTECT_ERROR = None


class Failure(Exception):
    """Ends the run with a failure document instead of a result."""

    def __init__(self, doc):
        Exception.__init__(self, doc.get("message", ""))
        self.doc = doc


def main(argv):
    if os.getpid() == 1:
        become_init()
    # Move the result channel off fd 3: the copy is non-inheritable (PEP 446), so programs the script
    # starts do not get it, and a file the script opens cannot land on fd 3 by accident.
    out = os.dup(RESULT_FD)
    os.close(RESULT_FD)
    try:
        body = run(argv)
    except Failure as failure:
        body = encode_doc(failure.doc)
    except SystemExit as exc:
        # The script asked to exit. Do what the interpreter would do, but write no result: the worker
        # reports the exit status.
        exit_now(exit_status(exc))
    except BaseException as exc:  # a fault in this runner, not in the script
        body = encode_doc(setup_doc("runner failed: %s: %s" % (type(exc).__name__, safe_str(exc))))
    try:
        write_all(out, body)
        os.close(out)
    except OSError:
        pass  # the worker stopped listening (result too large, or it gave up on us)
    exit_now(0)


def serve(argv):
    """Warm mode: import the script once, then answer requests: one at a time (def scrape) or many at once,
    each an asyncio task of one event loop (async def scrape).

    python -I [-S] -u -B -c <this file> --serve <script_dir> <memory_limit_bytes> <max_result_bytes> <max_processes>

    Frames on fd 4 (requests) and fd 3 (answers) are a 4-byte big-endian length and a body. The first
    request frame is the hello {"nonce": <runner nonce>, "lag_limit_ms": N, "threads": N, "template": bool},
    read before the script is imported; "template" asks a plain def script's runner to fork one-call
    runners instead of serving calls (serve_template), over its control socket on fd 5. Every answer body is a 32-character nonce followed by a JSON document: the runner nonce for
    the ready document ({"ready": true, "async": bool}, or a failure document when the script could not be
    imported) and the heartbeats of a shared runner ({"lag_ms": N, "rss_bytes": N}); the call's own nonce
    for its result document. Each request {"nonce": ..., "request_id": ..., "parameters": {...},
    "timeout_ms": N, "deadline_ms": N} gets one result document as in single mode; {"nonce": ...,
    "cancel": true} cancels that call (shared runners only). The nonces are random and known only to the
    worker and this process, so a frame another process forges through /proc/<pid>/fd matches no call and
    makes the worker retire the runner. EOF on fd 4 ends the process (a shared runner first finishes the
    calls in flight).
    """
    if os.getpid() == 1:
        become_init()
    out = os.dup(RESULT_FD)
    os.close(RESULT_FD)
    inp = os.dup(REQUEST_FD)
    os.close(REQUEST_FD)
    hello = {}
    shared = False
    threads = None  # the CallThreads of a threads runner
    template = None  # a template's control socket (fd)
    try:
        try:
            script_dir = argv[2]
            memory_limit = int(argv[3])
            max_result = int(argv[4])
            max_processes = int(argv[5])
        except (IndexError, ValueError):
            raise Failure(setup_doc("usage: runner --serve <script_dir> <memory_limit_bytes> <max_result_bytes> <max_processes>"))
        hello = read_hello(inp)
        if hello.get("template") is True:
            template = os.dup(TEMPLATE_FD)  # not inherited by what the script starts
            os.close(TEMPLATE_FD)
        detach_stdin()
        set_limits(memory_limit, max_processes)
        enable_faulthandler()
        install_call_output()
        scrape = load_scrape(script_dir)
        shared = is_async_function(scrape)
        if shared:  # an async def scrape runs on its event loop, threads or not
            ready = b'{"ready":true,"async":true}'
        elif hello_threads(hello):
            threads = CallThreads(hello_threads(hello), memory_limit)
            ready = b'{"ready":true,"async":false,"threads":true}'
        else:
            # One call at a time: the worker attributes output by time, as before; the plain streams return.
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
            ready = b'{"ready":true,"async":false}'
            if template is not None and fork_hazard((0, 1, 2, out, inp, template)) is None:
                ready = b'{"ready":true,"async":false,"template":true}'
            elif template is not None:
                os.close(template)  # serves calls itself, as a runner started afresh
                template = None
    except Failure as failure:
        ready = encode_doc(failure.doc)
        scrape = None
    except SystemExit as exc:
        exit_now(exit_status(exc))
    except BaseException as exc:
        ready = encode_doc(setup_doc("runner failed: %s: %s" % (type(exc).__name__, safe_str(exc))))
        scrape = None
    runner_nonce = str(hello.get("nonce", "")).encode("ascii", "replace")[:NONCE_LEN].ljust(NONCE_LEN, b"-")
    if not write_frame(out, runner_nonce + ready) or scrape is None:
        exit_now(0)
    if template is not None and (shared or threads is not None):
        os.close(template)  # a shared runner serves its calls itself
        template = None
    if threads is not None:
        ThreadsServer(scrape, script_dir, max_result, inp, out, runner_nonce, hello, threads).serve()
        exit_now(0)
    if shared:
        serve_shared(scrape, script_dir, max_result, inp, out, runner_nonce, hello)
        exit_now(0)
    if template is not None:
        out, inp, runner_nonce = serve_template(template, out, inp)  # returns in a forked runner only
        if not write_frame(out, runner_nonce + b'{"ready":true,"async":false}'):
            exit_now(0)
    serve_one_at_a_time(scrape, script_dir, max_result, inp, out)


def serve_one_at_a_time(scrape, script_dir, max_result, inp, out):
    while True:
        frame = read_frame(inp)
        if frame is None:
            exit_now(0)
        nonce = b"-" * NONCE_LEN
        try:
            request = json.loads(frame.decode("utf-8"))
            nonce = request_nonce(request)
            os.environ["SCRAPER_REQUEST_ID"] = str(request.get("request_id", ""))
            body = answer_call(scrape, request, script_dir, max_result, cancel_at(request))
        except BaseException as exc:
            body = encode_doc(setup_doc("runner failed: %s: %s" % (type(exc).__name__, safe_str(exc))))
        # Output printed during the request goes out before its answer, so the worker can attribute it.
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        if not write_frame(out, nonce + body):
            exit_now(0)


NONCE_LEN = 32


def fork_hazard(keep):
    """Why the imported script must not be forked, or None. A socket it opened at import (a connection, a
    pool's kept-alive one) would be shared by every forked runner, their traffic interleaved on it; a
    thread it started would be missing in them, the locks it held held forever. Such a script's runners
    start afresh."""
    import threading

    if threading.active_count() > 1:
        return "threads"
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return "no /proc/self/fd"
    for name in names:
        try:
            fd = int(name)
            if fd not in keep and os.readlink("/proc/self/fd/%d" % fd).startswith("socket:"):
                return "socket"
        except (OSError, ValueError):
            continue
    return None


def serve_template(ctl, out, inp):
    """A template (fork.go): the script is imported; instead of serving calls, this process
    forks one-call runners on the worker's request, so that each starts in a few milliseconds instead of an
    interpreter's start and the script's imports.

    A request on the control socket (a Unix SOCK_SEQPACKET socket) is the new runner's nonce followed by the
    path of its own folder, with four descriptors: its stdout, stderr, result (answers) and request ends.
    The child starts a session of its own (the worker kills it by its process group), takes them, sends the
    nonce back on the control socket (with SO_PASSCRED on the worker's end the kernel attaches the child's
    pid, as the worker sees it), closes the socket, makes its folder its working folder, HOME and TMPDIR
    (so concurrent calls of the script do not share files, as runners started afresh do not) and returns
    them to serve calls. The template never runs a call; it ends at EOF on the
    control socket. It reaps its children and reports each one's wait status to the worker as
    "exit <pid> <status>", so a crash is described as a runner's started afresh is; its children get the
    SIGCHLD handling the script's import left (the default, unless the script set one). Python's own
    at-fork hooks run in them (random is reseeded).
    """
    import signal
    import socket

    sock = socket.socket(fileno=ctl)

    def reap(_signum, _frame):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            try:
                sock.send(b"exit %d %d" % (pid, status))
            except OSError:
                pass

    scripts_own = signal.getsignal(signal.SIGCHLD)  # what the script's import left, for the children
    signal.signal(signal.SIGCHLD, reap)
    space = socket.CMSG_SPACE(4 * 4)
    while True:
        try:
            msg, ancdata, _flags, _addr = sock.recvmsg(4096, space)
        except InterruptedError:
            continue
        except OSError:
            exit_now(0)
        if not msg:
            exit_now(0)
        fds = []
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.extend(int.from_bytes(data[i : i + 4], sys.byteorder) for i in range(0, len(data) - len(data) % 4, 4))
        if len(fds) != 4 or len(msg) <= NONCE_LEN:
            for fd in fds:
                os.close(fd)
            continue
        try:
            pid = os.fork()
        except OSError as exc:
            pid = -1
            failed = ("fork failed: %s" % exc).encode("utf-8", "replace")
        if pid == 0:
            signal.signal(signal.SIGCHLD, scripts_own if scripts_own is not None else signal.SIG_DFL)
            os.setsid()
            os.dup2(fds[0], 1)
            os.dup2(fds[1], 2)
            for fd in (fds[0], fds[1], out, inp):
                os.close(fd)
            nonce, folder = msg[:NONCE_LEN], os.fsdecode(msg[NONCE_LEN:])
            try:
                sock.send(nonce)
            except OSError:
                os._exit(0)
            sock.close()
            try:
                os.mkdir(folder, 0o700)
                os.chdir(folder)
            except OSError as exc:
                sys.stderr.write("runner: cannot use its folder %s: %s\n" % (folder, exc))
                exit_now(1)
            os.environ["HOME"] = os.environ["TMPDIR"] = folder
            if "tempfile" in sys.modules:
                sys.modules["tempfile"].tempdir = None  # found again, from TMPDIR
            return fds[2], fds[3], nonce
        for fd in fds:
            os.close(fd)
        if pid < 0:
            try:
                sock.send(failed)
            except OSError:
                exit_now(0)


def answer_call(scrape, request, script_dir, max_result, at):
    """The answer body of one call of a warm runner: its result, or the failure document. A SystemExit the
    script raises ends the runner."""
    try:
        params = request.get("parameters") or {}
        if not isinstance(params, dict):
            raise Failure(setup_doc("parameters must be a JSON object"))
        return encode_result(call(scrape, params, script_dir, at), max_result)
    except Failure as failure:
        return encode_doc(failure.doc)
    except SystemExit as exc:
        exit_now(exit_status(exc))
    except BaseException as exc:
        return encode_doc(setup_doc("runner failed: %s: %s" % (type(exc).__name__, safe_str(exc))))


def read_hello(inp):
    frame = read_frame(inp)
    try:
        hello = json.loads(frame.decode("utf-8"))
    except (AttributeError, ValueError):
        hello = None
    if not isinstance(hello, dict):
        raise Failure(setup_doc("the worker's hello frame is missing or malformed"))
    return hello


def hello_threads(hello):
    """How many calls of a plain def scrape to serve at once, a thread each ("isolation": "threads"); 0: one
    call at a time."""
    try:
        return max(int(hello.get("threads", 0)), 0)
    except (TypeError, ValueError):
        return 0


def request_nonce(request):
    nonce = str(request.get("nonce", "")).encode("ascii", "replace")
    return nonce[:NONCE_LEN].ljust(NONCE_LEN, b"-")


CO_COROUTINE = 0x80  # inspect.CO_COROUTINE


def is_async_function(scrape):
    """inspect.iscoroutinefunction(scrape) without importing inspect for a plain function (the usual
    scrape): that import (ast, dis, tokenize, ...) was several ms of every warm runner's start. Methods, then
    partials, are unwrapped as inspect does; what is not then a plain function is left to inspect."""
    import functools
    import types

    f = scrape
    while isinstance(f, types.MethodType):
        f = f.__func__
    while isinstance(f, functools.partial):
        f = f.func
    if type(f) is not types.FunctionType:
        import inspect

        return inspect.iscoroutinefunction(scrape)
    return bool(f.__code__.co_flags & CO_COROUTINE)


# Output attribution in a shared runner. sys.stdout and sys.stderr are replaced, before the script is
# imported, by writers that prefix every line written while a call runs with that call's tag (a contextvar
# holds it: each call is an asyncio task with a context of its own), so the worker logs the line with the
# call's request_id. Lines written outside any call (at import, from threads the script started without
# copying the context, by subprocesses writing to fd 1 and 2 directly) carry no tag and are the script's.
# When a call ends, an end mark on both streams tells the worker that all its lines are out.
TAG_START = b"\x1e"
TAG_END = b"\x1f"  # the line follows
END_MARK = b"\x1d"  # the call wrote its last line
CURRENT_CALL = None  # a contextvars.ContextVar, once install_call_output ran


class CallWriter(object):
    """A text stream that writes whole lines, each tagged with the current call, to a file descriptor."""

    def __init__(self, stream):
        import threading

        self._stream = stream
        self._fd = stream.fileno()
        self._lock = threading.Lock()
        self._partial = {}  # tag -> the unfinished line
        self.encoding = getattr(stream, "encoding", "utf-8") or "utf-8"
        self.errors = "backslashreplace"
        self.buffer = getattr(stream, "buffer", None)

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError("write() argument must be str, not %s" % type(text).__name__)
        tag = CURRENT_CALL.get() if CURRENT_CALL is not None else None
        data = text.encode(self.encoding, self.errors)
        with self._lock:
            if tag is None:
                write_all(self._fd, data)
                return len(text)
            data = self._partial.pop(tag, b"") + data
            lines = data.split(b"\n")
            if lines[-1]:
                self._partial[tag] = lines[-1]
            prefix = TAG_START + tag + TAG_END
            body = b"".join(prefix + line + b"\n" for line in lines[:-1])
            if body:
                write_all(self._fd, body)
        return len(text)

    def end_call(self, tag):
        """Writes the call's unfinished line, if any, and its end mark."""
        with self._lock:
            rest = self._partial.pop(tag, b"")
            body = TAG_START + tag + END_MARK + b"\n"
            if rest:
                body = TAG_START + tag + TAG_END + rest + b"\n" + body
            try:
                write_all(self._fd, body)
            except OSError:
                pass

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        pass

    def fileno(self):
        return self._fd

    def isatty(self):
        return False

    def readable(self):
        return False

    def writable(self):
        return True

    def seekable(self):
        return False

    @property
    def closed(self):
        return False

    def close(self):
        pass


WRITERS = []  # the CallWriters of stdout and stderr, even if the script replaces sys.stdout


def install_call_output():
    global CURRENT_CALL
    import contextvars

    CURRENT_CALL = contextvars.ContextVar("scrape_call", default=None)
    sys.stdout = CallWriter(sys.__stdout__)
    sys.stderr = CallWriter(sys.__stderr__)
    WRITERS[:] = [sys.stdout, sys.stderr]


def end_call_output(tag):
    for writer in WRITERS:
        writer.end_call(tag)


def serve_shared(scrape, script_dir, max_result, inp, out, runner_nonce, hello):
    """Serves calls of an async def scrape concurrently, one asyncio task each, until EOF on inp; then
    finishes the calls in flight."""
    import asyncio

    # No SCRAPER_REQUEST_ID in a shared runner: the process serves many requests at once.
    os.environ.pop("SCRAPER_REQUEST_ID", None)
    asyncio.run(SharedServer(scrape, script_dir, max_result, inp, out, runner_nonce, lag_limit_of(hello)).serve())


def lag_limit_of(hello):
    try:
        return float(hello.get("lag_limit_ms", 2000)) / 1000
    except (TypeError, ValueError):
        return 2.0


class FrameServer(object):
    """What both kinds of shared runner do with the worker's frames: answer (one frame at a time, from any
    thread), decode a request frame, and report a heartbeat."""

    def __init__(self, scrape, script_dir, max_result, inp, out, runner_nonce, lag_limit):
        import threading

        self.scrape = scrape
        self.script_dir = script_dir
        self.max_result = max_result
        self.inp = inp
        self.out = out
        self.runner_nonce = runner_nonce
        self.interval = min(max(lag_limit / 4, 0.02), 0.5)
        self.write_lock = threading.Lock()

    def answer(self, nonce, body):
        with self.write_lock:
            if not write_frame(self.out, nonce + body):
                exit_now(0)  # the worker stopped listening

    def decode(self, frame):
        """The request in frame, or None (answered with a setup error) when it is not a JSON object."""
        try:
            request = json.loads(frame.decode("utf-8"))
            if isinstance(request, dict):
                return request
        except ValueError:
            pass
        self.answer(b"-" * NONCE_LEN, encode_doc(setup_doc("a request frame is not a JSON object")))
        return None

    def beat(self, lag):
        """Reports lag (seconds the heartbeat woke up late) and the runner's RSS."""
        doc = '{"lag_ms":%d,"rss_bytes":%d}' % (int(lag * 1000), rss_bytes())
        self.answer(self.runner_nonce, doc.encode("ascii"))


# The stack of each call's thread in a threads runner: RLIMIT_AS counts the reserved stacks, and the
# default (RLIMIT_STACK, usually 8 MiB) would spend half of a 1 GiB limit on 64 threads.
THREAD_STACK_BYTES = 2 << 20
# glibc's malloc gives threads arenas of their own, each reserving 64 MiB of address space, up to 8 per CPU:
# under RLIMIT_AS that alone makes thread starts fail. Python allocates under its lock anyway.
MALLOC_ARENA_MAX = 2


class CallThreads(object):
    """The threads of a threads runner, all started before the runner reports ready (so that a memory limit
    too small for them fails the start, clearly, rather than calls later); each runs one call at a time."""

    def __init__(self, count, memory_limit):
        import queue
        import threading

        limit_malloc_arenas()
        try:
            threading.stack_size(THREAD_STACK_BYTES)
        except (ValueError, RuntimeError):
            pass
        self.jobs = queue.SimpleQueue()
        for i in range(count):
            try:
                threading.Thread(target=self.work, name="scrape-call-%d" % i, daemon=True).start()
            except RuntimeError as exc:
                raise Failure(setup_doc(
                    "could start only %d of the %d threads of a threads runner (%s) under its limits (memory %s, "
                    "processes and threads %s): lower WARM_RUNNER_MAX_THREADS, or raise the script's memory_limit_mb "
                    "or SCRIPT_MAX_PROCESSES"
                    % (i, count, safe_str(exc),
                       "%d MiB" % (memory_limit >> 20) if memory_limit > 0 else "none",
                       LIMITS["processes"] or "none")))

    def work(self):
        while True:
            self.jobs.get()()

    def submit(self, fn):
        """Runs fn in a free thread, or the next one to be free."""
        self.jobs.put(fn)


class ThreadsServer(FrameServer):
    """Serves calls of a plain def scrape concurrently, each in a thread of a CallThreads, until EOF on inp;
    then waits until every call in flight has been answered. No event loop: this thread reads the requests
    and hands each to a call thread, which writes its own answer; a watcher thread answers the calls still
    running at their time budget (a thread cannot be stopped: the call is abandoned, its late answer
    dropped, and the worker retires the runner); a heartbeat thread reports how late it woke up (it needs
    the interpreter lock to run, so its lag is how long calls kept the lock) and the RSS."""

    def __init__(self, scrape, script_dir, max_result, inp, out, runner_nonce, hello, threads):
        import threading

        FrameServer.__init__(self, scrape, script_dir, max_result, inp, out, runner_nonce, lag_limit_of(hello))
        self.threads = threads
        self.changed = threading.Condition()
        self.calls = {}  # nonce -> ThreadCall, until answered
        self.deadlines = []  # heap of (cancel_at, nonce)
        self.draining = False  # EOF: serve waits for the last answer

    def claim(self, nonce):
        """Takes the right to answer the call: the call once, for the first of its thread and the watcher;
        then None."""
        with self.changed:
            call = self.calls.pop(nonce, None)
            if self.draining and not self.calls:
                self.changed.notify_all()
            return call

    def serve(self):
        import heapq
        import threading

        # No SCRAPER_REQUEST_ID in a shared runner: the process serves many requests at once.
        os.environ.pop("SCRAPER_REQUEST_ID", None)
        threading.Thread(target=self.watch, name="scrape-deadlines", daemon=True).start()
        threading.Thread(target=self.heartbeat, name="scrape-heartbeat", daemon=True).start()
        while True:
            frame = read_frame(self.inp)
            if frame is None:
                break
            request = self.decode(frame)
            if request is None:
                continue
            nonce = request_nonce(request)
            if request.get("cancel"):
                continue  # a thread cannot be stopped: the worker retires the runner instead
            call = ThreadCall(nonce, request)
            with self.changed:
                self.calls[nonce] = call
                if call.at is not None:
                    heapq.heappush(self.deadlines, (call.at, nonce))
                    if self.deadlines[0][1] == nonce:
                        self.changed.notify_all()  # the watcher's next wake-up is this call's
            self.threads.submit(lambda tc=call: self.run(tc))
        with self.changed:  # EOF: finish the calls in flight
            self.draining = True
            while self.calls:
                self.changed.wait()

    def run(self, tc):
        import threading

        tc.ident = threading.get_ident()
        token = CURRENT_CALL.set(tc.nonce)
        try:
            body = answer_call(self.scrape, tc.request, self.script_dir, self.max_result, tc.at)
            end_call_output(tc.nonce)
        finally:
            CURRENT_CALL.reset(token)
        if self.claim(tc.nonce) is not None:
            self.answer(tc.nonce, body)

    def watch(self):
        import heapq
        import time

        while True:
            with self.changed:
                while True:
                    while self.deadlines and self.deadlines[0][1] not in self.calls:
                        heapq.heappop(self.deadlines)  # answered already
                    now = time.time()
                    if self.deadlines and self.deadlines[0][0] <= now:
                        nonce = heapq.heappop(self.deadlines)[1]
                        break
                    self.changed.wait(self.deadlines[0][0] - now if self.deadlines else None)
            call = self.claim(nonce)
            if call is not None:
                stack = thread_stack(call.ident)
                end_call_output(nonce)
                self.answer(nonce, encode_doc(timeout_doc(ScriptTimeout(stack, THREAD_TIMEOUT_MESSAGE))))

    def heartbeat(self):
        import time

        while True:
            expected = time.monotonic() + self.interval
            time.sleep(self.interval)
            self.beat(max(time.monotonic() - expected, 0))


THREAD_TIMEOUT_MESSAGE = "the script's call ran past its time budget in a thread"


class ThreadCall(object):
    def __init__(self, nonce, request):
        self.nonce = nonce
        self.request = request
        self.at = cancel_at(request)
        self.ident = None  # the thread running it, once one does


def limit_malloc_arenas():
    try:
        import ctypes

        m_arena_max = -8
        ctypes.CDLL(None).mallopt(m_arena_max, MALLOC_ARENA_MAX)
    except Exception:
        pass


class SharedServer(FrameServer):
    def __init__(self, scrape, script_dir, max_result, inp, out, runner_nonce, lag_limit):
        FrameServer.__init__(self, scrape, script_dir, max_result, inp, out, runner_nonce, lag_limit)
        self.calls = {}  # nonce -> the call's task

    async def serve(self):
        import asyncio
        import threading

        loop = asyncio.get_running_loop()
        self.loop = loop
        self.eof = loop.create_future()
        threading.Thread(target=self.read_requests, name="scrape-requests", daemon=True).start()
        beat = loop.create_task(self.heartbeat())
        await self.eof
        while self.calls:
            await asyncio.wait(list(self.calls.values()))
        beat.cancel()

    def read_requests(self):
        # A thread, so that the event loop never waits on the pipe. Each frame is handed to the loop.
        while True:
            frame = read_frame(self.inp)
            if frame is None:
                self.loop.call_soon_threadsafe(self.set_eof)
                return
            self.loop.call_soon_threadsafe(self.on_frame, frame)

    def set_eof(self):
        if not self.eof.done():
            self.eof.set_result(None)

    def on_frame(self, frame):
        request = self.decode(frame)
        if request is None:
            return
        nonce = request_nonce(request)
        if request.get("cancel"):
            task = self.calls.get(nonce)
            if task is not None:
                task.cancel()
            return
        self.calls[nonce] = self.loop.create_task(self.run_call(nonce, request))

    async def run_call(self, nonce, request):
        import asyncio
        import time

        CURRENT_CALL.set(nonce)  # this task's own context
        timed_out = []
        handle = None
        inner = None
        try:
            try:
                params = request.get("parameters") or {}
                if not isinstance(params, dict):
                    raise Failure(setup_doc("parameters must be a JSON object"))
                value = self.scrape(params)
                if is_awaitable(value):
                    inner = asyncio.ensure_future(value)
                    at = cancel_at(request)
                    if at is not None:
                        delay = max(at - time.time(), 0)

                        def expire():
                            timed_out.append(task_stack(inner))
                            inner.cancel()

                        handle = self.loop.call_later(delay, expire)
                    try:
                        value = await asyncio.shield(inner)
                    except asyncio.CancelledError:
                        # Cancelled by the worker (cancel frame): cancel the script's coroutine and let its
                        # cleanup run; no one waits for the answer.
                        if not inner.done():
                            inner.cancel()
                            try:
                                await inner
                            except BaseException:
                                pass
                            raise
                        if timed_out:
                            raise ScriptTimeout(timed_out[0])
                        raise
                body = encode_result(value, self.max_result)
            except ScriptTimeout as exc:
                body = encode_doc(timeout_doc(exc))
            except Failure as failure:
                body = encode_doc(failure.doc)
            except SystemExit as exc:
                exit_now(exit_status(exc))
            except asyncio.CancelledError:
                body = encode_doc(setup_doc("cancelled by the worker"))
            except BaseException as exc:
                body = encode_doc(exception_doc(exc, self.script_dir))
        finally:
            if handle is not None:
                handle.cancel()
            self.calls.pop(nonce, None)
        end_call_output(nonce)
        self.answer(nonce, body)

    async def heartbeat(self):
        import asyncio
        import time

        while True:
            expected = time.monotonic() + self.interval
            await asyncio.sleep(self.interval)
            self.beat(max(time.monotonic() - expected, 0))


def rss_bytes():
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def write_frame(fd, body):
    try:
        write_all(fd, len(body).to_bytes(4, "big") + body)
        return True
    except OSError:
        return False  # the worker stopped listening


def read_frame(fd):
    header = read_exact(fd, 4)
    if header is None:
        return None
    size = int.from_bytes(header, "big")
    if size > MAX_REQUEST_BYTES:
        return None
    return read_exact(fd, size)


def read_exact(fd, n):
    chunks = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def run(argv):
    try:
        script_dir = argv[1]
        memory_limit = int(argv[2])
        max_result = int(argv[3])
        max_processes = int(argv[4])
    except (IndexError, ValueError):
        raise Failure(setup_doc("usage: runner <script_dir> <memory_limit_bytes> <max_result_bytes> <max_processes>"))
    request = read_request()
    detach_stdin()
    set_limits(memory_limit, max_processes)
    enable_faulthandler()
    scrape = load_scrape(script_dir)
    value = call(scrape, request["parameters"], script_dir, cancel_at(request))
    return encode_result(value, max_result)


def read_request():
    line = sys.stdin.buffer.readline()
    try:
        request = json.loads(line.decode("utf-8"))
    except ValueError as exc:
        raise Failure(setup_doc("cannot decode the request on stdin: %s" % exc))
    if not isinstance(request, dict):
        request = {}
    params = request.get("parameters")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise Failure(setup_doc("parameters must be a JSON object, got %s" % type(params).__name__))
    request["parameters"] = params
    return request


def cancel_at(request):
    """The time.time() at which an async script is cancelled: CANCEL_MARGIN (at most a tenth of the budget)
    before the worker's deadline. None when the request carries no budget."""
    try:
        timeout = float(request.get("timeout_ms", 0)) / 1000
        deadline = float(request.get("deadline_ms", 0)) / 1000
    except (TypeError, ValueError):
        return None
    if timeout <= 0 or deadline <= 0:
        return None
    return deadline - min(CANCEL_MARGIN, timeout / 10)


def detach_stdin():
    # The request has been read; the script (and anything it starts) reads from /dev/null from now on.
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(fd, 0)
    finally:
        os.close(fd)
    sys.stdin = sys.__stdin__ = open(0, "r", closefd=False)


# The limits in force, for clearer messages when the script runs into one.
LIMITS = {"memory": 0, "processes": 0, "file": 0}


def set_limits(memory_limit, max_processes):
    if PROTECT_ERROR is not None:
        raise Failure(setup_doc("cannot make the runner non-dumpable: %s" % PROTECT_ERROR))
    # What the script creates (in /tmp, /dev/shm, its run folder) is its user's alone: scripts that run as
    # uids of their own (SCRIPT_UID_RANGE) cannot read each other's files.
    os.umask(0o077)
    try:
        import resource
        import signal

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if MAX_FILE_BYTES > 0:
            # A write past the limit fails with EFBIG (OSError "File too large") rather than killing the
            # process with SIGXFSZ; programs the script starts inherit both.
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            max_file = lower_to_hard(resource, resource.RLIMIT_FSIZE, MAX_FILE_BYTES)
            resource.setrlimit(resource.RLIMIT_FSIZE, (max_file, max_file))
            LIMITS["file"] = max_file
        if memory_limit > 0:
            memory_limit = lower_to_hard(resource, resource.RLIMIT_AS, memory_limit)
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
            LIMITS["memory"] = memory_limit
        if max_processes > 0:
            # Counts every process and thread of this user, the worker's included when it shares the user.
            max_processes = lower_to_hard(resource, resource.RLIMIT_NPROC, max_processes)
            resource.setrlimit(resource.RLIMIT_NPROC, (max_processes, max_processes))
            LIMITS["processes"] = max_processes
    except (ImportError, ValueError, OSError) as exc:
        raise Failure(setup_doc("cannot set resource limits: %s" % exc))


def lower_to_hard(resource, which, value):
    soft, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY and hard < value:
        return hard
    return value


def protect():
    """Makes this process non-dumpable (Linux): its /proc/<pid>/mem, /proc/<pid>/fd and the rest of its
    /proc files become root's, so other processes of its user cannot read or rewrite its memory, reopen its
    pipes or ptrace it. Forks (become_init's) inherit it; exec of a normal program resets it, so what the
    script starts is the script's own business. Returns None, or why it failed."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_dumpable = 4
        if libc.prctl(pr_set_dumpable, 0, 0, 0, 0) != 0:
            return os.strerror(ctypes.get_errno())
    except Exception as exc:
        return "%s: %s" % (type(exc).__name__, safe_str(exc))
    return None


def take_options():
    """Reads and removes the runner's own settings from the environment, so the script does not see them."""
    global MAX_FILE_BYTES
    try:
        MAX_FILE_BYTES = int(os.environ.pop("SCRAPER_MAX_FILE_BYTES", "0") or 0)
    except ValueError:
        MAX_FILE_BYTES = 0


def become_init():
    """Forks; the child returns and runs the script, the parent is the PID namespace's init until it ends.

    The init holds none of the run's descriptors, has no signal handlers (so nothing in the namespace can
    signal it), reaps every orphan, and when the child ends leaves with the child's status (128+N for a
    signal, as shells report it). Its exit makes the kernel kill whatever is left in the namespace:
    daemons, setsid escapees and fork bombs alike.
    """
    import signal

    child = os.fork()
    if child == 0:
        return
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    for fd in range(0, TEMPLATE_FD + 1):
        try:
            os.close(fd)
        except OSError:
            pass
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(0)
        if pid == child:
            if os.WIFSIGNALED(status):
                os._exit(128 + os.WTERMSIG(status))
            os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def enable_faulthandler():
    # A segfault in a C extension then leaves a Python traceback on stderr, which ends up in the output tail.
    try:
        import faulthandler

        faulthandler.enable()
    except Exception:
        pass


def source_only_loader():
    """A SourceFileLoader that never reads bytecode: it compiles the source every time."""
    import importlib.machinery

    class SourceOnlyLoader(importlib.machinery.SourceFileLoader):
        def get_code(self, fullname):
            path = self.get_filename(fullname)
            return self.source_to_code(self.get_data(path), path)

    return SourceOnlyLoader


def import_from_source(script_dir, loader):
    """Makes every import below script_dir (its modules and packages) use loader for .py files and ignore
    bytecode: a .pyc planted in __pycache__, or a bare .pyc, is never run in place of the checked source.
    The interpreter runs with -B, so it writes none either. Imports elsewhere (the standard library, the
    environment's packages) keep their bytecode."""
    import importlib.machinery as machinery

    root = os.path.join(os.path.realpath(script_dir), "")

    def hook(path):
        if not os.path.join(os.path.realpath(path or os.curdir), "").startswith(root):
            raise ImportError("not below the script's folder")
        return machinery.FileFinder(
            path,
            (machinery.ExtensionFileLoader, machinery.EXTENSION_SUFFIXES),
            (loader, machinery.SOURCE_SUFFIXES),
        )

    sys.path_hooks.insert(0, hook)
    for path in list(sys.path_importer_cache):
        try:
            below = os.path.join(os.path.realpath(path), "").startswith(root)
        except (TypeError, ValueError):
            below = False
        if below:
            del sys.path_importer_cache[path]


def load_scrape(script_dir):
    import importlib.util

    path = os.path.join(script_dir, SCRIPT_FILE)
    loader = source_only_loader()
    import_from_source(script_dir, loader)
    sys.path.insert(0, script_dir)
    try:
        spec = importlib.util.spec_from_file_location("scraper", path, loader=loader("scraper", path))
        module = importlib.util.module_from_spec(spec)
        sys.modules["scraper"] = module
        spec.loader.exec_module(module)
    except SystemExit:
        raise
    except BaseException as exc:
        raise Failure(exception_doc(exc, script_dir))
    scrape = getattr(module, "scrape", None)
    if scrape is None:
        raise Failure(
            {
                "ok": False,
                "kind": "exception",
                "type": "AttributeError",
                "message": "scraper.py defines no scrape(params) function",
            }
        )
    if not callable(scrape):
        raise Failure(
            {
                "ok": False,
                "kind": "exception",
                "type": "TypeError",
                "message": "scrape in scraper.py is a %s, not a function" % type_name(scrape),
            }
        )
    return scrape


def call(scrape, params, script_dir, cancel_at=None):
    try:
        value = scrape(params)
        if is_awaitable(value):
            import asyncio

            value = asyncio.run(await_value(value, cancel_at))
        return value
    except SystemExit:
        raise
    except ScriptTimeout as exc:
        raise Failure(timeout_doc(exc))
    except BaseException as exc:
        raise Failure(exception_doc(exc, script_dir))


# Plain results are by far the most common; recognising them saves importing inspect (~5 ms) per run.
PLAIN_TYPES = (dict, list, str, int, float, bool, type(None), tuple)


def is_awaitable(value):
    if type(value) in PLAIN_TYPES:
        return False
    import inspect

    return inspect.isawaitable(value)


class ScriptTimeout(Exception):
    """An async script's coroutine was cancelled at its time budget (or a threads runner's call ran past
    it); stack is where it was."""

    def __init__(self, stack, message="the script's coroutine was cancelled at its time budget"):
        Exception.__init__(self, "cancelled at the time budget")
        self.stack = stack
        self.message = message


async def await_value(awaitable, cancel_at=None):
    if cancel_at is None:
        return await awaitable
    import asyncio
    import time

    # asyncio.wait rather than wait_for: a TimeoutError the script raises itself stays the script's error.
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=max(cancel_at - time.time(), 0))
    if task in done:
        return task.result()
    stack = task_stack(task)
    task.cancel()
    try:
        await task  # the coroutine's finally blocks run; one that ignores the cancel is killed by the worker
    except BaseException:
        pass
    raise ScriptTimeout(stack)


def task_stack(task):
    try:
        import io

        out = io.StringIO()
        task.print_stack(file=out)
        return out.getvalue()
    except Exception:
        return ""


def thread_stack(ident):
    """The stack of the thread whose id is ident (None: not started), as a traceback."""
    try:
        import traceback

        frame = sys._current_frames().get(ident) if ident is not None else None
        if frame is None:
            return ""
        return "Traceback (most recent call last):\n" + "".join(traceback.format_stack(frame))
    except Exception:
        return ""


def timeout_doc(exc):
    tb = exc.stack
    if len(tb) > MAX_TRACEBACK_CHARS:
        tb = "...\n" + tb[-MAX_TRACEBACK_CHARS:]
    return {
        "ok": False,
        "kind": "timeout",
        "type": "TimeoutError",
        "message": exc.message,
        "traceback": tb,
    }


def encode_result(value, max_result):
    try:
        try:
            data = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
        except UnicodeEncodeError:
            # A string holds a lone surrogate (e.g. bytes decoded with surrogateescape); escaped, it is
            # still valid JSON.
            data = json.dumps(value, allow_nan=False, separators=(",", ":")).encode("ascii")
    except (TypeError, ValueError, RecursionError, OverflowError) as exc:
        raise Failure(invalid_output_doc(value, exc))
    except MemoryError:
        raise Failure(
            {
                "ok": False,
                "kind": "exception",
                "type": "MemoryError",
                "message": "ran out of memory while encoding the result as JSON",
            }
        )
    if len(data) > max_result:
        raise Failure({"ok": False, "kind": "too_large", "size": len(data), "limit": max_result})
    return b'{"ok":true,"data":' + data + b"}"


def invalid_output_doc(value, exc):
    found = explain(value)
    if found is None:
        return {
            "ok": False,
            "kind": "invalid_output",
            "message": cap("the result cannot be encoded as JSON: %s" % safe_str(exc), MAX_MESSAGE_CHARS),
        }
    where, bad_type, problem = found
    return {
        "ok": False,
        "kind": "invalid_output",
        "type": cap(bad_type, MAX_TYPE_CHARS),
        "message": cap("the result cannot be encoded as JSON: %s %s" % (where, problem), MAX_MESSAGE_CHARS),
    }


def explain(value):
    """Finds the first part of value that JSON cannot hold: (where, type name, what is wrong) or None."""
    budget = [MAX_EXPLAIN_NODES]
    return explain_at(value, "result", 0, set(), budget)


def explain_at(value, where, depth, open_containers, budget):
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_EXPLAIN_DEPTH:
        return None
    if value is None or isinstance(value, (str, int)):  # bool is an int
        return None
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return where, "float", "is %r (JSON has no NaN or Infinity)" % value
        return None
    if isinstance(value, (dict, list, tuple)):
        if id(value) in open_containers:
            return where, type_name(value), "contains itself (a circular reference)"
        open_containers.add(id(value))
        if isinstance(value, dict):
            for key, item in value.items():
                if not (key is None or isinstance(key, (str, int, float))):
                    return where, type_name(key), "has a key of type %s (JSON object keys are strings)" % type_name(key)
                found = explain_at(item, "%s[%s]" % (where, cap(repr(key), 60)), depth + 1, open_containers, budget)
                if found is not None:
                    return found
        else:
            for index, item in enumerate(value):
                found = explain_at(item, "%s[%d]" % (where, index), depth + 1, open_containers, budget)
                if found is not None:
                    return found
        open_containers.discard(id(value))
        return None
    return where, type_name(value), "is a %s" % type_name(value)


def exception_doc(exc, script_dir):
    name = type(exc).__name__
    message = safe_str(exc) or name
    if isinstance(exc, MemoryError) and LIMITS["memory"]:
        message = "the script ran out of memory: it may use at most %d MiB of address space" % (LIMITS["memory"] >> 20)
    elif isinstance(exc, OSError) and LIMITS["file"] and getattr(exc, "errno", None) == errno.EFBIG:
        message = "%s (the script reached its limit of %d MiB per file, SCRIPT_MAX_FILE_MB)" % (message, LIMITS["file"] >> 20)
    elif isinstance(exc, BlockingIOError) and LIMITS["processes"] and getattr(exc, "errno", None) == errno.EAGAIN:
        message = "%s (the script reached its limit of %d processes and threads for its user)" % (
            message,
            LIMITS["processes"],
        )
    try:
        import traceback  # only on the failure path: it costs ~4 ms to import

        tb = "".join(traceback.format_exception(type(exc), exc, script_frames(exc.__traceback__, script_dir)))
    except Exception:
        tb = ""
    if len(tb) > MAX_TRACEBACK_CHARS:
        tb = "...\n" + tb[-MAX_TRACEBACK_CHARS:]
    return {
        "ok": False,
        "kind": "exception",
        "type": cap(name, MAX_TYPE_CHARS),
        "message": cap(message, MAX_MESSAGE_CHARS),
        "traceback": tb,
    }


def script_frames(tb, script_dir):
    """Drops the runner's and importlib's frames from the top of tb, when the script has frames of its own."""
    prefix = os.path.join(os.path.abspath(script_dir), "")
    frame = tb
    while frame is not None:
        if os.path.abspath(frame.tb_frame.f_code.co_filename).startswith(prefix):
            return frame
        frame = frame.tb_next
    return tb


def setup_doc(message):
    return {"ok": False, "kind": "setup", "message": cap(message, MAX_MESSAGE_CHARS)}


def encode_doc(doc):
    # ASCII only, so that any string (lone surrogates included) yields valid JSON.
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def write_all(fd, body):
    view = memoryview(body)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def exit_status(exc):
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        sys.stderr.write("%s\n" % (code,))
    except Exception:
        pass
    return 1


def exit_now(status):
    # os._exit skips atexit handlers and does not wait for non-daemon threads: the run is over once the
    # result is written, whatever the script left running.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(status)


def type_name(value):
    kind = type(value)
    module = getattr(kind, "__module__", "")
    name = getattr(kind, "__qualname__", kind.__name__)
    if module in ("builtins", "", None):
        return name
    return "%s.%s" % (module, name)


def safe_str(value):
    try:
        return str(value)
    except Exception:
        return ""


def cap(text, limit):
    if len(text) <= limit:
        return text
    return text[: limit - 3] + "..."


if __name__ == "__main__":
    PROTECT_ERROR = protect()
    take_options()
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(sys.argv)
    else:
        main(sys.argv)
