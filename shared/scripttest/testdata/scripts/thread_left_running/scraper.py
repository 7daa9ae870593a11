import threading
import time


def scrape(params):
    threading.Thread(target=time.sleep, args=(60,)).start()  # not a daemon: would block a normal exit
    return {"done": True}
