class QuotaExceeded(Exception):
    pass


def scrape(params):
    raise QuotaExceeded()
