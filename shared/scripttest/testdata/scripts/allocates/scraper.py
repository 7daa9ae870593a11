def scrape(params):
    blob = bytearray(params.get("bytes", 1 << 30))
    return {"allocated": len(blob)}
