import sys


def scrape(params):
    for i in range(int(params.get("lines", 10000))):
        print("progress line %d" % i)
    print("a warning on stderr", file=sys.stderr)
    return {"ok": True}
