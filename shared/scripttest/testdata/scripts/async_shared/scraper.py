"""An async def script whose calls share one runner. Parameters (all optional):

  wait_for  a file to wait for (polled with asyncio.sleep): the call ends once another call created it
  create    a file to create
  print     a line to print (stdout) and log (stderr, through logging), after any wait
  sleep     seconds to await
  block     seconds to block the event loop with time.sleep (what an async script must not do)
  raise     raise ValueError

It answers with the runner's pid as the worker sees it, so a test can tell which calls shared a process.
"""
import asyncio
import logging
import os
import time

import hostpids

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
log = logging.getLogger("async_shared")


async def scrape(params):
    if params.get("create"):
        with open(params["create"], "w") as f:
            f.write("here")
    if params.get("wait_for"):
        while not os.path.exists(params["wait_for"]):
            await asyncio.sleep(0.02)
    if params.get("sleep"):
        await asyncio.sleep(params["sleep"])
    if params.get("block"):
        time.sleep(params["block"])
    if params.get("print"):
        print(params["print"])
        await asyncio.sleep(0)
        log.info("logged %s", params["print"])
    if params.get("raise"):
        raise ValueError("asked to raise")
    return {"pid": hostpids.self_pid()}
