def scrape(params):
    return {}
