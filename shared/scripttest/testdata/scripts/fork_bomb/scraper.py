import os
import resource
import time

import hostpids


def scrape(params):
    """A fork bomb: every process forks as fast as it can, and every child does the same.

    It refuses to start unless a process limit will stop it: as root (which the kernel exempts from
    RLIMIT_NPROC) or without RLIMIT_NPROC it raises instead, so a test can never take the machine down.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    if os.getuid() == 0 or soft == resource.RLIM_INFINITY or soft > 100000:
        raise RuntimeError("refusing to fork-bomb without a process limit (uid %d, RLIMIT_NPROC %s)" % (os.getuid(), soft))
    if params.get("pid_file"):  # none under the namespaces containments: the run's /proc is its own
        with open(params["pid_file"], "w") as f:
            f.write("%d 0" % hostpids.self_pgid())
    forked = 0
    while True:
        pid = os.fork()  # raises BlockingIOError at the limit
        if pid == 0:
            forked = 0
            try:
                while True:
                    if os.fork() == 0:
                        forked = 0
                    else:
                        forked += 1
            except OSError:
                time.sleep(60)
                os._exit(0)
        forked += 1
