"""Writes a file of params["mb"] MiB into its TMPDIR, one MiB at a time, and reports its size."""
import os


def scrape(params):
    path = os.path.join(os.environ.get("TMPDIR", "."), "big")
    chunk = b"\0" * (1 << 20)
    with open(path, "wb") as f:
        for _ in range(int(params["mb"])):
            f.write(chunk)
    return {"bytes": os.path.getsize(path)}
