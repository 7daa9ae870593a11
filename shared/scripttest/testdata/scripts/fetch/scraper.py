import urllib.error
import urllib.request


def scrape(params):
    """Fetches params["url"] with urllib (which follows redirects and honours http_proxy/https_proxy), as an
    ordinary scraper does with a URL its caller chose."""
    try:
        with urllib.request.urlopen(params["url"], timeout=float(params.get("timeout", 5))) as resp:
            return {"status": resp.status, "body": resp.read(2000).decode("utf-8", "replace")}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "body": exc.read(2000).decode("utf-8", "replace")}
    except (urllib.error.URLError, OSError) as exc:
        return {"error": "%s: %s" % (type(exc).__name__, exc)}
