import os


def scrape(params):
    """Writes params["mib"] MiB to each of stdout and stderr, half as one endless line, half as short lines."""
    mib = int(params.get("mib", 1))
    chunk = b"x" * (1 << 20)
    lines = (b"a line of output\n" * 61681)[: 1 << 20]
    for i in range(mib):
        data = chunk if i % 2 == 0 else lines
        for fd in (1, 2):
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
    return {"wrote_mib": mib}
