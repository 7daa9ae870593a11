def scrape(params)
    return {}
