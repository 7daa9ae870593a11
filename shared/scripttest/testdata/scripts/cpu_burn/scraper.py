import time


def scrape(params):
    """Burns params["cpu"] seconds of CPU (default 0.05) and returns how many loops that took: a CPU-bound
    scrape (parsing a large page, say), for make bench."""
    budget = float(params.get("cpu", 0.05))
    start = time.process_time()
    loops = 0
    while time.process_time() - start < budget:
        for _ in range(1000):
            loops += 1
    return {"loops": loops}
