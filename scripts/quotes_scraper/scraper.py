"""Quotes scraper: a realistic example with its own dependencies (see requirements.txt).

Scrapes https://quotes.toscrape.com/, a site built for practising scraping.

Parameters:
    url        optional, the first page (default https://quotes.toscrape.com/)
    max_pages  optional, how many pages to read by following "Next" (default 1, at most 50)
    timeout    optional, seconds for connecting and for each read, per page (default 10)

Result:
    {"quotes": [{"text": str, "author": str, "tags": [str]}], "pages": number of pages read}

Run it by hand (after pip install -r requirements.txt):  python3 scraper.py '{"max_pages": 2}'
"""

import contextlib
import json
import sys
import urllib.parse
import urllib.request

from bs4 import BeautifulSoup

DEFAULT_URL = "https://quotes.toscrape.com/"
USER_AGENT = "scrapeplatform-quotes/1.0"
MAX_PAGES = 50
MAX_BODY_BYTES = 5 * 1024 * 1024


def scrape(params):
    url = params.get("url", DEFAULT_URL)
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError('parameter "url" must be an http:// or https:// URL')
    max_pages = params.get("max_pages", 1)
    if isinstance(max_pages, bool) or not isinstance(max_pages, int) or not 1 <= max_pages <= MAX_PAGES:
        raise ValueError('parameter "max_pages" must be an integer from 1 to %d' % MAX_PAGES)
    timeout = params.get("timeout", 10)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 600:
        raise ValueError('parameter "timeout" must be a number of seconds from 0 to 600')

    quotes = []
    pages = 0
    seen = set()
    while url and pages < max_pages and url not in seen:
        seen.add(url)
        html, url = _fetch(url, timeout)
        soup = BeautifulSoup(html, "html.parser")
        quotes.extend(_quote(block) for block in soup.select("div.quote"))
        pages += 1
        print("page %d: %s, %d quotes so far" % (pages, url, len(quotes)))  # goes to the worker's logs

        next_link = soup.select_one("li.next > a[href]")
        url = urllib.parse.urljoin(url, next_link["href"]) if next_link else None
    return {"quotes": quotes, "pages": pages}


def _fetch(url, timeout):
    """Returns (decoded HTML, final URL). Error statuses raise urllib.error.HTTPError."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read(MAX_BODY_BYTES)
        charset = response.headers.get_content_charset() or "utf-8"
        try:
            return body.decode(charset, errors="replace"), response.geturl()
        except LookupError:  # a charset Python does not know
            return body.decode("utf-8", errors="replace"), response.geturl()


def _quote(block):
    text = block.select_one(".text")
    author = block.select_one(".author")
    return {
        # The site wraps each quote in curly quotation marks; they are typography, not part of the quote.
        "text": text.get_text(strip=True).strip("\u201c\u201d\"") if text else "",
        "author": author.get_text(strip=True) if author else "",
        "tags": [tag.get_text(strip=True) for tag in block.select(".tag")],
    }


if __name__ == "__main__":
    raw = sys.argv[1] if len(sys.argv) > 1 else (sys.stdin.read() if not sys.stdin.isatty() else "{}")
    with contextlib.redirect_stdout(sys.stderr):  # as in the worker, prints do not mix with the result
        result = scrape(json.loads(raw or "{}"))
    json.dump(result, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
