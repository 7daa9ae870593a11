import subprocess
import time

import hostpids


def scrape(params):
    """Sleeps params["seconds"]. With params["pid_file"], first starts a grandchild `sleep 600` and writes
    its pid (as the worker sees it) there, so a test can check that a timeout kills the whole process group."""
    if params.get("pid_file"):
        child = subprocess.Popen(["sleep", "600"])
        with open(params["pid_file"], "w") as f:
            f.write(str(hostpids.of_child(child.pid)))
    time.sleep(float(params.get("seconds", 60)))
    return {"slept": params.get("seconds", 60)}
