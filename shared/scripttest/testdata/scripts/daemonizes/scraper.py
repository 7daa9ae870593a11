import os
import time

import hostpids


def scrape(params):
    # The classic daemon: fork, setsid, fork again, and let the middle process exit, so the daemon is
    # nobody's child any more and lives in a session of its own.
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.setsid()
        ready_r, ready_w = os.pipe()
        if os.fork() == 0:
            os.write(w, str(hostpids.self_pid()).encode())
            os.close(w)
            os.close(ready_w)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            time.sleep(60)
            os._exit(0)
        os.close(ready_w)
        os.read(ready_r, 1)  # EOF once the daemon has reported its pid
        os._exit(0)
    os.close(w)
    daemon = int(os.read(r, 32))
    os.waitpid(middle, 0)
    with open(params["pid_file"], "w") as f:
        f.write("%d %d" % (hostpids.self_pgid(), daemon))
    if params.get("sleep"):
        time.sleep(params["sleep"])
    return {"daemon": daemon}
