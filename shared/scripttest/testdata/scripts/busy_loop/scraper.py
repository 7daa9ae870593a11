def scrape(params):
    n = 0
    while True:
        n += 1
