import os
import time

import hostpids

LOADS = 1  # module body runs once per process
CALLS = 0
KEPT = []  # what params["keep_mb"] keeps resident across calls


def scrape(params):
    global CALLS
    CALLS += 1
    if params.get("print"):
        print(params["print"])
    if params.get("raise"):
        raise ValueError("asked to raise")
    if params.get("keep_mb"):
        KEPT.append(b"x" * (int(params["keep_mb"]) << 20))  # written, so resident
    if params.get("sleep"):
        time.sleep(params["sleep"])
    return {"pid": hostpids.self_pid(), "calls": CALLS, "loads": LOADS, "request_id": os.environ.get("SCRAPER_REQUEST_ID")}
