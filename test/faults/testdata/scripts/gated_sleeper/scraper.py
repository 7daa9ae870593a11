import os
import time


def scrape(params):
    """A sleeper the test controls. With params["started_file"], it first appends one line to that file, so a
    test can wait for the run to begin without reading logs (which reach it late) and count how many times a
    task ran. With params["until_file"], it returns as soon as that file exists; it sleeps at most
    params["seconds"] (default 60) either way."""
    if params.get("started_file"):
        with open(params["started_file"], "a") as f:
            f.write("%d\n" % os.getpid())
    seconds = float(params.get("seconds", 60))
    until = params.get("until_file")
    if not until:
        time.sleep(seconds)
        return {"slept": seconds}
    deadline = time.monotonic() + seconds
    while not os.path.exists(until) and time.monotonic() < deadline:
        time.sleep(0.02)
    return {"released": os.path.exists(until)}
