import sys

import conflictpkg


def scrape(params):
    return {"version": conflictpkg.VERSION, "python": sys.executable}
