def scrape(params):
    return {"echo": params}
