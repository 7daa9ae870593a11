import os
import subprocess


def scrape(params):
    # Started and forgotten: it keeps the run's stdout open and would outlive the script.
    child = subprocess.Popen(["sleep", "60"])
    with open(params["pid_file"], "w") as f:
        f.write("%d %d" % (os.getpid(), child.pid))
    return {"left_behind": child.pid}
