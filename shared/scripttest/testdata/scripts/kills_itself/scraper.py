import os
import signal


def scrape(params):
    os.kill(os.getpid(), signal.SIGKILL)
