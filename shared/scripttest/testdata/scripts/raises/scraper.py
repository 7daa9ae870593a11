import sys


def helper(value):
    raise ValueError(value)


def scrape(params):
    print("about to fail", file=sys.stderr)
    helper("boom")
