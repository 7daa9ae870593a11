def scrape(params):
    return {"blob": "x" * int(params.get("bytes", 1 << 20))}
