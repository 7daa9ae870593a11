"""Tests for scraper.py against saved pages served on 127.0.0.1. Skipped when beautifulsoup4 is not installed.

Run: cd scripts/quotes_scraper && python3 -m unittest -v
"""

import http.server
import os
import pathlib
import threading
import unittest
from unittest import mock

try:
    import scraper
except ImportError:  # beautifulsoup4 missing: install requirements.txt to run these tests
    if os.environ.get("REQUIRE_SCRIPT_DEPS") == "1":
        # CI must run these tests, not skip them (.ci/run installs Debian's python3-bs4).
        raise
    scraper = None

TESTDATA = pathlib.Path(__file__).resolve().parent / "testdata"


class _Handler(http.server.BaseHTTPRequestHandler):
    pages = {"/": "page1.html", "/page/2/": "page2.html"}

    def do_GET(self):
        name = self.pages.get(self.path)
        body = (TESTDATA / name).read_bytes() if name else b"<h1>404</h1>"
        self.send_response(200 if name else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


@unittest.skipIf(scraper is None, "beautifulsoup4 is not installed")
class QuotesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env["NO_PROXY"] = env["no_proxy"] = "*"
        cls._env = mock.patch.dict(os.environ, env, clear=True)
        cls._env.start()
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.url = "http://127.0.0.1:%d/" % cls.server.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        cls.thread.join(5)
        cls._env.stop()

    def test_one_page(self):
        r = scraper.scrape({"url": self.url})
        self.assertEqual(r["pages"], 1)
        self.assertEqual(
            r["quotes"],
            [
                {
                    "text": "The world as we have created it is a process of our thinking.",
                    "author": "Albert Einstein",
                    "tags": ["change", "deep-thoughts"],
                },
                {
                    "text": "It is our choices, Harry, that show what we truly are.",
                    "author": "J.K. Rowling",
                    "tags": ["choices"],
                },
            ],
        )

    def test_pagination_stops_at_max_pages(self):
        r = scraper.scrape({"url": self.url, "max_pages": 2})
        self.assertEqual(r["pages"], 2)
        self.assertEqual(len(r["quotes"]), 3)
        self.assertEqual(r["quotes"][2], {"text": "A day without sunshine is like, you know, night.",
                                          "author": "Steve Martin", "tags": []})

    def test_missing_next_page_is_an_error(self):
        # Page 2 links to /page/3/, which this server answers with 404.
        with self.assertRaises(OSError):  # urllib.error.HTTPError
            scraper.scrape({"url": self.url, "max_pages": 3})

    def test_invalid_params(self):
        for params in ({"url": "ftp://127.0.0.1/"}, {"max_pages": 0}, {"max_pages": 51}, {"timeout": 0}):
            with self.subTest(params=params), self.assertRaises(ValueError):
                scraper.scrape(params)


if __name__ == "__main__":
    unittest.main()
