"""A hostile script that tries to undo the namespaces a run is contained in (ContainNamespaces,
ContainUserns) and to leave its run.

It reports its capabilities and no_new_privs (/proc/self/status) and whether it can write in its run folder
(HOME), then tries to unmount the run's /tmp and
/proc, to mount a proc and a tmpfs of its own, and does the same again from a user and mount namespace it
makes itself (where it holds every capability: the mounts it copied are locked there). After each attempt
it looks for the marks: files the worker left in folders the run's mount namespace hides.

params (all optional):
  marks    [path, ...]: files that must stay out of sight; each reports whether it was seen
  escape   a token: starts a process that leaves the run's session (setsid) and sleeps with the token in
           its command line, so the test can look for it from outside; reports its pid in the run
"""
import ctypes
import errno
import json
import os
import subprocess
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MNT_DETACH = 2
PR_SET_DUMPABLE = 4

libc = ctypes.CDLL(None, use_errno=True)


def call(fn, *args):
    if fn(*args) == 0:
        return "ok"
    return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))


def status():
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.startswith("Cap") or key in ("NoNewPrivs", "Uid", "Gid"):
                out[key] = value.split()[0] if key.startswith("Cap") or key == "NoNewPrivs" else value.split()
    return out


def seen(marks):
    return {m: os.path.exists(m) for m in marks}


def attempts(marks):
    out = {
        "umount /tmp": call(libc.umount2, b"/tmp", 0),
        "umount -l /tmp": call(libc.umount2, b"/tmp", MNT_DETACH),
        "umount -l /proc": call(libc.umount2, b"/proc", MNT_DETACH),
        "mount proc": call(libc.mount, b"proc", b"/proc", b"proc", 0, None),
        "mount tmpfs on /tmp": call(libc.mount, b"tmpfs", b"/tmp", b"tmpfs", 0, None),
    }
    if out["mount tmpfs on /tmp"] == "ok":  # its own tmpfs over the run's: take it away again
        out["umount own tmpfs"] = call(libc.umount2, b"/tmp", MNT_DETACH)
        out["umount -l /tmp again"] = call(libc.umount2, b"/tmp", MNT_DETACH)
    out["marks"] = seen(marks)
    return out


def nested(marks):
    """Makes a user and a mount namespace in a child and tries again from there."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        res = {}
        try:
            uid, gid = os.getuid(), os.getgid()
            res["unshare"] = call(libc.unshare, CLONE_NEWUSER | CLONE_NEWNS)
            if res["unshare"] == "ok":
                # The runner made itself non-dumpable, which closes /proc/self to this process: undo that
                # to map its uid in the new namespace, as an attacker would.
                res["dumpable"] = call(libc.prctl, PR_SET_DUMPABLE, 1, 0, 0, 0)
                for name, text in (("setgroups", "deny"), ("uid_map", "%d %d 1" % (uid, uid)), ("gid_map", "%d %d 1" % (gid, gid))):
                    try:
                        with open("/proc/self/" + name, "w") as f:
                            f.write(text)
                    except OSError as exc:
                        res[name] = type(exc).__name__
                res["status"] = status()
                res.update(attempts(marks))
        except Exception as exc:  # noqa: BLE001 - reported
            res["error"] = "%s: %s" % (type(exc).__name__, exc)
        os.write(w, json.dumps(res).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data.decode() or "{}")


def scrape(params):
    marks = params.get("marks", [])
    out = {"uid": os.getuid(), "gid": os.getgid(), "status": status(), "marks": seen(marks)}
    try:  # its run folder (HOME) stays its own to write in, whatever is hidden around it
        with open(os.path.join(os.environ["HOME"], "written"), "w") as f:
            f.write("x")
        out["home_writable"] = "ok"
    except OSError as exc:
        out["home_writable"] = "%s: %s" % (type(exc).__name__, exc)
    out["attempts"] = attempts(marks)
    out["nested"] = nested(marks)
    if params.get("escape"):
        child = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", "import time; time.sleep(600)", params["escape"]],
            start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out["escaped"] = child.pid
    return out
