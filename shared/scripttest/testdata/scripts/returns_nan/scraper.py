def scrape(params):
    return {"price": float("nan")}
