import os
import subprocess
import time

import hostpids


def scrape(params):
    """Starts a grandchild and a setsid escapee, records every pid (as the worker sees it) in a file of its
    own under params["pid_dir"], then works for params["seconds"]."""
    child = subprocess.Popen(["sleep", "600"])
    escapee = subprocess.Popen(["sleep", "600"], start_new_session=True)
    me = hostpids.self_pid()
    pids = [me, hostpids.of_child(child.pid), hostpids.of_child(escapee.pid)]
    path = os.path.join(params["pid_dir"], "run-%d" % me)
    with open(path + ".tmp", "w") as f:
        f.write(" ".join(str(p) for p in pids))
    os.rename(path + ".tmp", path)
    time.sleep(float(params.get("seconds", 3)))
    return {"pids": pids}
