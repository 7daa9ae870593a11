import os
import subprocess
import time

import hostpids


def scrape(params):
    child = subprocess.Popen(["sleep", "60"])
    tmp = params["pid_file"] + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d" % (hostpids.self_pgid(), hostpids.of_child(child.pid)))
    os.rename(tmp, params["pid_file"])
    time.sleep(60)
    return {"slept": True}
