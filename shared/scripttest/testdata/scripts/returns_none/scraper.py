def scrape(params):
    print("nothing to return")
