import asyncio


async def scrape(params):
    await asyncio.sleep(0.01)
    return {"async": True, "n": params.get("n")}
