"""Example scraper: fetch one page and report its title, headings and links.

Standard library only, so it runs in any Python 3.8+ without installing anything.

Parameters (the ``params`` dict):
    url        required, an http:// or https:// URL
    timeout    optional, seconds for connecting and for each read (default 10)
    max_links  optional, the most links returned (default 100)

Result:
    {"url": final URL after redirects, "status_code": int, "title": str or None,
     "headings": [{"level": 1..6, "text": str}], "links": [{"href": absolute URL, "text": str}],
     "content_type": media type such as "text/html" ("" when the server sent none)}

An HTTP error status (404, 500, ...) is a result, not an exception: the page is parsed like any other.
Invalid parameters raise ValueError; network failures raise urllib's URLError (or socket.timeout).

Run it by hand:  python3 scraper.py '{"url": "https://example.com/"}'
"""

import codecs
import contextlib
import html.parser
import http.client
import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request

USER_AGENT = "scrapeplatform-example/1.0"
MAX_BODY_BYTES = 5 * 1024 * 1024
DEFAULT_TIMEOUT = 10
DEFAULT_MAX_LINKS = 100
HTML_TYPES = ("text/html", "application/xhtml+xml")
ALLOWED_SCHEMES = ("http", "https")


def scrape(params):
    """Fetch params["url"] and return its title, headings and links (see the module docstring)."""
    url, timeout, max_links = _parse_params(params)
    status, final_url, headers, body = _fetch(url, timeout)

    content_type = headers.get_content_type() if headers.get("Content-Type") else ""
    result = {
        "url": final_url,
        "status_code": status,
        "title": None,
        "headings": [],
        "links": [],
        "content_type": content_type,
    }
    if not _is_html(content_type, body):
        return result

    text = body.decode(_charset(headers, body), errors="replace")
    page = _PageParser(final_url, max_links)
    page.feed(text)
    page.close()
    result["title"] = page.title
    result["headings"] = page.headings
    result["links"] = page.link_list()
    return result


def _parse_params(params):
    if not isinstance(params, dict):
        raise ValueError("params must be a JSON object, got %s" % type(params).__name__)

    url = params.get("url")
    if not isinstance(url, str) or not url.strip():
        raise ValueError('parameter "url" is required and must be a non-empty string')
    url = url.strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise ValueError('parameter "url" must be an http:// or https:// URL, got scheme %r' % parts.scheme)
    if not parts.hostname:
        raise ValueError('parameter "url" has no host')

    timeout = params.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
        raise ValueError('parameter "timeout" must be a number of seconds between 0 and 3600, got %r' % (timeout,))

    max_links = params.get("max_links", DEFAULT_MAX_LINKS)
    if isinstance(max_links, bool) or not isinstance(max_links, int) or max_links < 0:
        raise ValueError('parameter "max_links" must be a non-negative integer, got %r' % (max_links,))

    return url, float(timeout), max_links


class _HTTPOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects like urllib does, but only to http and https URLs (urllib also allows ftp)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ALLOWED_SCHEMES:
            raise ValueError("refusing to follow a redirect to a %r URL" % scheme)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch(url, timeout):
    """Returns (status, final_url, headers, body) and reads at most MAX_BODY_BYTES of the body."""
    opener = urllib.request.build_opener(_HTTPOnlyRedirects())
    request = urllib.request.Request(
        url,
        headers={
            "User-Agent": USER_AGENT,
            "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8",
        },
    )
    try:
        response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        headers = err.headers if err.headers is not None else http.client.HTTPMessage()
        # Not the site's answer but the worker's egress proxy's, which says why in a sentence: it would not
        # connect (private, loopback or metadata addresses, unless the operator allows them with
        # EGRESS_ALLOW), or could not (the name does not resolve).
        refused = headers.get("X-Egress-Refused")
        if refused:
            raise PermissionError(refused)
        unreachable = headers.get("X-Egress-Error")
        if unreachable:
            raise urllib.error.URLError(unreachable)
        # An error status is still a page: urllib raises it, and the error doubles as the response.
        body = b""
        if err.fp is not None:
            try:
                body = err.read(MAX_BODY_BYTES)
            finally:
                err.close()
        return err.code, getattr(err, "url", None) or url, headers, body

    with response:
        body = response.read(MAX_BODY_BYTES)
        return response.getcode(), response.geturl(), response.headers, body


def _is_html(content_type, body):
    if content_type:
        return content_type in HTML_TYPES
    # No Content-Type at all: look at the first bytes, as browsers do.
    head = body[:512].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html"))


_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)


def _charset(headers, body):
    """The encoding to decode body with: a BOM, else the Content-Type charset, else a <meta> charset, else utf-8."""
    for bom, name in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if body.startswith(bom):
            return name
    candidates = [headers.get_content_charset()]
    match = _META_CHARSET.search(body[:1024])
    if match:
        candidates.append(match.group(1).decode("ascii"))
    for name in candidates:
        if name:
            try:
                return codecs.lookup(name).name
            except LookupError:
                continue
    return "utf-8"


def _clean(text):
    return " ".join(text.split())


class _PageParser(html.parser.HTMLParser):
    """Collects the title, h1-h6 headings and <a href> links of one HTML document."""

    _SKIP = ("script", "style", "template", "noscript")
    _HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}

    def __init__(self, base_url, max_links):
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.max_links = max_links
        self.title = None
        self.headings = []
        self._links = {}  # absolute URL -> text, in document order (dicts keep insertion order)
        self._base_seen = False
        self._skip_depth = 0
        self._svg_depth = 0
        self._title_parts = None
        self._heading = None  # (level, [text parts]) while inside h1-h6
        self._anchor = None  # [absolute URL, [text parts]] while inside <a href>

    # Tags.

    def handle_starttag(self, tag, attrs):
        if tag in self._SKIP:
            self._skip_depth += 1
        elif tag == "svg":
            self._svg_depth += 1
        elif tag == "base" and not self._base_seen:
            href = dict(attrs).get("href")
            if href:  # only the first <base href> counts, as in browsers
                self._base_seen = True
                self.base_url = urllib.parse.urljoin(self.base_url, href.strip())
        elif tag == "title" and self.title is None and self._svg_depth == 0:
            self._title_parts = []
        elif tag in self._HEADINGS:
            self._end_heading()
            self._heading = (self._HEADINGS[tag], [])
        elif tag == "a":
            self._end_anchor()
            href = dict(attrs).get("href")
            absolute = self._absolute(href)
            if absolute is not None:
                self._anchor = [absolute, []]

    def handle_endtag(self, tag):
        if tag in self._SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag == "svg":
            self._svg_depth = max(0, self._svg_depth - 1)
        elif tag == "title" and self._title_parts is not None:
            self.title = _clean("".join(self._title_parts))
            self._title_parts = None
        elif tag in self._HEADINGS:
            self._end_heading()
        elif tag == "a":
            self._end_anchor()

    def handle_data(self, data):
        if self._skip_depth:
            return
        if self._title_parts is not None:
            self._title_parts.append(data)
        if self._heading is not None:
            self._heading[1].append(data)
        if self._anchor is not None:
            self._anchor[1].append(data)

    def close(self):
        super().close()
        if self._title_parts is not None:  # unterminated <title>
            self.title = _clean("".join(self._title_parts))
            self._title_parts = None
        self._end_heading()
        self._end_anchor()

    # Helpers.

    def _end_heading(self):
        if self._heading is not None:
            level, parts = self._heading
            text = _clean("".join(parts))
            if text:
                self.headings.append({"level": level, "text": text})
            self._heading = None

    def _end_anchor(self):
        if self._anchor is None:
            return
        href, parts = self._anchor
        self._anchor = None
        text = _clean("".join(parts))
        if href in self._links:
            if not self._links[href]:  # keep the first non-empty text seen for a URL
                self._links[href] = text
        elif len(self._links) < self.max_links:
            self._links[href] = text

    def _absolute(self, href):
        """href resolved against the page, without its #fragment; None unless it is an http(s) URL.

        Fragment-only links ("#top") point back into this page and are skipped."""
        if href is None:
            return None
        href = href.strip()
        if not href or href.startswith("#"):
            return None
        try:
            absolute, _ = urllib.parse.urldefrag(urllib.parse.urljoin(self.base_url, href))
            parts = urllib.parse.urlsplit(absolute)
        except ValueError:  # e.g. an invalid IPv6 literal
            return None
        if parts.scheme not in ALLOWED_SCHEMES or not parts.netloc:
            return None
        return absolute

    def link_list(self):
        return [{"href": href, "text": text} for href, text in self._links.items()]


if __name__ == "__main__":
    # Local testing: python3 scraper.py '{"url": "..."}'  (or the JSON on stdin). The worker does not use this.
    raw = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()
    with contextlib.redirect_stdout(sys.stderr):  # as in the worker, prints do not mix with the result
        result = scrape(json.loads(raw))
    json.dump(result, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
