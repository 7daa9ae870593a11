def scrape(params):
    data = {"name": "loop"}
    data["self"] = data
    return data
