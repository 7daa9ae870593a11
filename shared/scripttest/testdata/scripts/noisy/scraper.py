import sys


def scrape(params):
    lines = params["lines"]
    print("a warning on stderr", file=sys.stderr)
    print('{"ok": true, "data": "not the result"}')
    print("x" * 1000000)  # one line longer than any buffer
    for i in range(lines):
        print("line %d" % i)
    sys.stdout.write("last line\n")
    return {"printed": lines}
