def scrape(params):
    raise ValueError("cannot scrape %s: the page has no prices" % params.get("url", "?"))
