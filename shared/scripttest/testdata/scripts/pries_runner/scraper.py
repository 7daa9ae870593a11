"""Hostile: tries to reach into another process of its own user (a warm runner of another script) through
/proc: read and write its memory, and reopen each of its descriptors (its request and result pipes among
them). params: {"pid": N} (and "sleep": seconds to wait first). With "control": true it first does the same to a child of its own (dumpable,
same user), which must succeed: the test then knows a refusal is the target's protection, not a /proc that
refuses everything."""
import os
import subprocess
import sys
import time


def attempt(fn):
    try:
        return "ok: %s" % (fn(),)
    except OSError as exc:
        return "%s: %s" % (type(exc).__name__, exc.strerror)


def pry(pid):
    found = {}

    def read_mem():
        # Opening is what the kernel checks (PTRACE_MODE_ATTACH); reading then needs a mapped address.
        with open("/proc/%d/mem" % pid, "rb") as f:
            return f.fileno() >= 0

    def write_mem():
        with open("/proc/%d/mem" % pid, "r+b") as f:
            return f.fileno() >= 0

    found["mem_read"] = attempt(read_mem)
    found["mem_write"] = attempt(write_mem)
    found["fd_list"] = attempt(lambda: sorted(os.listdir("/proc/%d/fd" % pid)))
    fds = {}
    for fd in range(0, 12):
        path = "/proc/%d/fd/%d" % (pid, fd)
        for mode, flags in (("read", os.O_RDONLY | os.O_NONBLOCK), ("write", os.O_WRONLY | os.O_NONBLOCK)):

            def reopen(path=path, flags=flags):
                os.close(os.open(path, flags))
                return "reopened"

            result = attempt(reopen)
            if not result.startswith("FileNotFoundError"):
                fds["%d/%s" % (fd, mode)] = result
    found["fds"] = fds
    return found


def scrape(params):
    if params.get("sleep"):
        time.sleep(params["sleep"])  # a victim for a sibling to pry into
    out = {"uid": os.getuid(), "target": pry(int(params["pid"]))}
    if params.get("control"):
        child = subprocess.Popen([sys.executable, "-I", "-S", "-c", "import time; time.sleep(30)"], stdin=subprocess.PIPE)
        try:
            import hostpids

            out["control"] = pry(hostpids.of_child(child.pid))
        finally:
            child.kill()
            child.wait()
    return out
