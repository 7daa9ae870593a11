import os
import subprocess
import time

import hostpids


def scrape(params):
    """Sleeps params["seconds"]. With params["pid_file"], first starts a grandchild `sleep 600` and writes
    its pid (as the worker sees it) there, so a test can check that a timeout kills the whole process group.
    With params["started_file"], it appends one line to that file as it starts, so a test can wait for the
    run to begin without reading logs (which reach it late) and count how many times a task ran. With
    params["until_file"], it returns as soon as that file exists (at the latest after "seconds"), so a test
    can decide when the script finishes."""
    if params.get("started_file"):
        with open(params["started_file"], "a") as f:
            f.write("%d\n" % os.getpid())
    if params.get("pid_file"):
        child = subprocess.Popen(["sleep", "600"])
        with open(params["pid_file"], "w") as f:
            f.write(str(hostpids.of_child(child.pid)))
    seconds = float(params.get("seconds", 60))
    if params.get("until_file"):
        deadline = time.monotonic() + seconds
        while not os.path.exists(params["until_file"]) and time.monotonic() < deadline:
            time.sleep(0.02)
        return {"released": os.path.exists(params["until_file"])}
    time.sleep(seconds)
    return {"slept": params.get("seconds", 60)}
