import ctypes
import os
import random
import signal
import tempfile
import time

import hostpids

IMPORTED_IN = os.getpid()  # the process that imported the script: a template's, when runners are forked
IMPORTED_IN_HOST = hostpids.self_pid()  # the same, as the worker sees it (where the run's /proc is the host's)
PR_GET_DUMPABLE = 3


def scrape(params):
    if params.get("sleep"):
        time.sleep(params["sleep"])
    if params.get("exit") is not None:
        os._exit(int(params["exit"]))
    if params.get("kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    libc = ctypes.CDLL(None, use_errno=True)
    return {
        "imported_in": IMPORTED_IN,
        "imported_in_host": IMPORTED_IN_HOST,
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "sid": os.getsid(0),
        "dumpable": libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0),
        "sigchld_default": signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL,
        "random": random.random(),  # forks of one template must not draw the same numbers
        "folders": [os.getcwd(), os.environ.get("HOME"), os.environ.get("TMPDIR"), tempfile.gettempdir()],
    }
