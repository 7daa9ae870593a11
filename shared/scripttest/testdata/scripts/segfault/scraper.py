import ctypes


def scrape(params):
    return ctypes.string_at(0)
