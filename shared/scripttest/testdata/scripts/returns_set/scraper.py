def scrape(params):
    return {"tags": ["a", {"b", "c"}]}
