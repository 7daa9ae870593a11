def main(params):
    return {}
