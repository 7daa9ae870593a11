def scrape(params):
    return {"blob": "x" * params["bytes"]}
