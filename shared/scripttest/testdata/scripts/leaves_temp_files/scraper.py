"""Leaves files behind in the machine's shared temporary folders: a mark in /tmp, /var/tmp and /dev/shm each
(named after params["name"]) and, in /dev/shm, a file of params["shm_mb"] MiB (tmpfs: memory that the
address-space limit does not count). With params["read"] it only reports which marks of that name exist
and what they hold, as another script would look for them."""
import os

DIRS = ("/tmp", "/var/tmp", "/dev/shm")


def scrape(params):
    name = params["name"]
    marks = [os.path.join(d, "mark-" + name) for d in DIRS]
    if params.get("read"):
        seen = {}
        for m in marks:
            try:
                with open(m) as f:
                    seen[m] = f.read()
            except OSError as exc:
                seen[m] = type(exc).__name__
        return {"seen": seen}
    for m in marks:
        with open(m, "w") as f:
            f.write("secret of " + name)
    nested = os.path.join("/tmp", "dir-" + name)
    os.makedirs(os.path.join(nested, "inner"), exist_ok=True)
    with open(os.path.join(nested, "inner", "file"), "w") as f:
        f.write("x")
    big = os.path.join("/dev/shm", "big-" + name)
    chunk = b"\0" * (1 << 20)
    with open(big, "wb") as f:
        for _ in range(int(params.get("shm_mb", 0))):
            f.write(chunk)
    return {"left": marks + [nested, big], "uid": os.getuid()}
