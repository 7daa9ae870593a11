import os
import stat
import time


def scrape(params):
    # Find the runner's result pipe and write far more than the worker accepts, as a hostile script might.
    for fd in range(3, 64):
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue
        if stat.S_ISFIFO(mode):
            chunk = b"[" * 65536
            while True:
                os.write(fd, chunk)
    time.sleep(60)
