import os
import socket

IMPORTED_IN = os.getpid()
# A connection opened at import (here a socket pair, standing for a database connection or a pooled
# keep-alive one): forked runners would share it, so this script's runners start afresh.
CONNECTION = socket.socketpair()


def scrape(params):
    return {"imported_in": IMPORTED_IN, "pid": os.getpid()}
