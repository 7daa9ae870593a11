import sys


def scrape(params):
    print("leaving early")
    sys.exit(3)
