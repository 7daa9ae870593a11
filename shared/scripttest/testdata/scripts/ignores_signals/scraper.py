import signal
import time


def scrape(params):
    # Ignores every signal it may ignore and sleeps in short naps, catching the ones it may not ignore.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_IGN)
    while True:
        try:
            time.sleep(0.1)
        except BaseException:
            pass
