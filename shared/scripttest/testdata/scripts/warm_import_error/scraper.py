raise RuntimeError("cannot initialise: missing configuration")


def scrape(params):
    return {}
