"""A blocking def script for "isolation": "threads" runners, whose calls share one process, a thread each.
Parameters (all optional):

  wait_for  a file to wait for (polled with time.sleep): the call ends once another call created it
  create    a file to create
  print     a line to print (stdout) and log (stderr, through logging), after any wait
  sleep     seconds to sleep (time.sleep: the thread blocks, the others go on)
  hold_gil  a count to sum in one C call, sum(range(N)), which keeps the interpreter lock throughout
  raise     raise ValueError

It answers with the runner's pid as the worker sees it and the thread it ran in, so a test can tell which
calls shared a process.
"""
import logging
import os
import threading
import time

import hostpids

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
log = logging.getLogger("threads_shared")


def scrape(params):
    if params.get("create"):
        with open(params["create"], "w") as f:
            f.write("here")
    if params.get("wait_for"):
        while not os.path.exists(params["wait_for"]):
            time.sleep(0.02)
    if params.get("sleep"):
        time.sleep(params["sleep"])
    if params.get("hold_gil"):
        sum(range(int(params["hold_gil"])))
    if params.get("print"):
        print(params["print"])
        log.info("logged %s", params["print"])
    if params.get("raise"):
        raise ValueError("asked to raise")
    return {"pid": hostpids.self_pid(), "thread": threading.current_thread().name}
