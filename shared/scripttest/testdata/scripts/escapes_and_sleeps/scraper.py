import os
import signal
import subprocess
import time

import hostpids


def scrape(params):
    # Leaves the session, ignores the polite signals, and outlives the script's timeout unless killed.
    child = subprocess.Popen(
        ["sleep", "60"], start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGTERM, signal.SIG_IGN)
    )
    tmp = params["pid_file"] + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d %d" % (hostpids.self_pgid(), hostpids.of_child(child.pid)))
    os.rename(tmp, params["pid_file"])
    time.sleep(60)
    return {"slept": True}
