def scrape(params):
    """Allocates without bound, a megabyte at a time, until something stops it."""
    hoard = []
    while True:
        hoard.append(bytearray(1 << 20))
