def scrape(params):
    return {"title": "Example Domain", "items": [1, 2.5, True, None, "ü"], "params": params}
