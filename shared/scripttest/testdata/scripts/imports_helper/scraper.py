"""Imports helper.py from its own folder, and tries a module that exists only as bytecode (sourceless.pyc,
which a test plants): code below the script's folder must come from source."""
import helper


def scrape(params):
    try:
        import sourceless  # noqa: F401

        bare = "imported"
    except ImportError:
        bare = "ImportError"
    return {"scraper": "source", "helper": helper.NAME, "sourceless": bare}
