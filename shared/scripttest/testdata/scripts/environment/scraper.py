import os
import sys


def scrape(params):
    return {
        "env": dict(os.environ),
        "cwd": os.getcwd(),
        "sys_path": sys.path,
        "stdin": sys.stdin.read(),
        "flags": {
            "isolated": sys.flags.isolated,
            "no_site": sys.flags.no_site,
            "dont_write_bytecode": sys.flags.dont_write_bytecode,
        },
    }
