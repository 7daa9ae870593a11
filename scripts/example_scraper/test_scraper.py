"""Tests for scraper.py. Standard library only; every request goes to a server on 127.0.0.1 started here.

Run: cd scripts/example_scraper && python3 -m unittest -v
"""

import http.server
import json
import os
import pathlib
import threading
import time
import unittest
import urllib.error
from unittest import mock

import scraper

TESTDATA = pathlib.Path(__file__).resolve().parent / "testdata"
PAGE = (TESTDATA / "page.html").read_bytes()

LATIN1_PAGE = "<html><head><title>Café Größe</title></head><body><h1>Crème brûlée</h1></body></html>"
LINKS_PAGE = "<html><body>%s</body></html>" % "".join('<a href="/l/%d">link %d</a>' % (i, i) for i in range(150))
BIG_PAGE = (
    b"<html><head><title>Big</title></head><body>"
    + b"<p>" + b"x" * (6 * 1024 * 1024) + b"</p>"
    + b'<a href="/after-the-cap">unreachable</a></body></html>'
)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes for the fixture server. Each request's User-Agent is recorded on the server."""

    def do_GET(self):
        self.server.user_agents.append(self.headers.get("User-Agent"))
        routes = {
            "/dir/page.html": (200, "text/html; charset=utf-8", PAGE),
            "/missing": (404, "text/html; charset=utf-8", b"<title>Not Found</title><h1>No such page</h1>"),
            "/error": (500, "text/html", b"<title>Server Error</title><h1>Oops</h1><a href='/home'>Home</a>"),
            "/data.json": (200, "application/json", b'{"title": "<title>not html</title>"}'),
            "/latin1": (200, "text/html; charset=ISO-8859-1", LATIN1_PAGE.encode("latin-1")),
            "/meta-latin1": (
                200,
                "text/html",
                b'<meta charset="iso-8859-1"><title>' + "Café".encode("latin-1") + b"</title>",
            ),
            "/bad-utf8": (200, "text/html; charset=utf-8", b"<title>bad \xff\xfe bytes</title>"),
            "/unknown-charset": (200, "text/html; charset=x-no-such-charset", "<title>Café</title>".encode()),
            "/no-content-type": (200, None, b"  <!DOCTYPE html><title>Sniffed</title>"),
            "/no-content-type-text": (200, None, b"just text <title>no</title>"),
            "/links": (200, "text/html", LINKS_PAGE.encode()),
            "/big": (200, "text/html", BIG_PAGE),
        }
        redirects = {
            "/redirect": "/dir/page.html",
            "/to-ftp": "ftp://127.0.0.1/file",
            "/loop": "/loop",
        }
        if self.path in redirects:
            self.send_response(302)
            self.send_header("Location", redirects[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/refused":
            # What the worker's egress proxy answers for an address it will not connect to.
            body = b"egress proxy refused 127.0.0.1:8765: 127.0.0.1 is a loopback address"
            self.send_response(403)
            self.send_header("X-Egress-Refused", body.decode())
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path == "/unresolved":
            # What the proxy answers for a name that does not resolve.
            body = b"egress proxy cannot reach nowhere.test:80: nowhere.test does not resolve (no such host)"
            self.send_response(502)
            self.send_header("X-Egress-Error", body.decode())
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path == "/slow":
            time.sleep(1.5)
        status, content_type, body = routes.get(self.path, (404, "text/plain", b"not found"))
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the scraper stops reading at its cap

    def log_message(self, format, *args):  # keep test output quiet
        pass


class ScrapeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # A proxy from the environment would send requests for 127.0.0.1 elsewhere: drop them all.
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env["NO_PROXY"] = env["no_proxy"] = "*"
        cls._env = mock.patch.dict(os.environ, env, clear=True)
        cls._env.start()

        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        cls.server.user_agents = []
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.base = "http://127.0.0.1:%d" % cls.server.server_address[1]

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        cls.thread.join(5)
        cls._env.stop()

    def scrape(self, path, **params):
        params["url"] = self.base + path
        result = scraper.scrape(params)
        json.dumps(result)  # the result must be JSON-serialisable
        return result

    def test_page(self):
        r = self.scrape("/dir/page.html")
        self.assertEqual(r["url"], self.base + "/dir/page.html")
        self.assertEqual(r["status_code"], 200)
        self.assertEqual(r["content_type"], "text/html")
        self.assertEqual(r["title"], "Example Fixture & Page")
        self.assertEqual(
            r["headings"],
            [
                {"level": 1, "text": "Main heading"},
                {"level": 2, "text": "Café section"},
                {"level": 2, "text": "Second section"},
                {"level": 6, "text": "Small print"},
            ],
        )
        self.assertEqual(
            r["links"],
            [
                {"href": self.base + "/about", "text": "About us"},
                {"href": self.base + "/dir/sibling.html", "text": "relative link"},
                {"href": "https://example.org/absolute?q=1", "text": "Absolute link"},
                {"href": self.base + "/dir/sub/page.html?x=1&y=2", "text": "Sub page"},
                {"href": "http://example.net/protocol-relative", "text": "Protocol-relative"},
            ],
        )

    def test_user_agent(self):
        self.server.user_agents.clear()
        self.scrape("/dir/page.html")
        self.assertEqual(self.server.user_agents, ["scrapeplatform-example/1.0"])

    def test_redirect_is_followed(self):
        r = self.scrape("/redirect")
        self.assertEqual(r["url"], self.base + "/dir/page.html")
        self.assertEqual(r["status_code"], 200)
        self.assertEqual(r["title"], "Example Fixture & Page")

    def test_redirect_to_other_scheme_is_refused(self):
        with self.assertRaisesRegex(ValueError, "redirect to a 'ftp' URL"):
            self.scrape("/to-ftp")

    def test_redirect_loop_is_returned_as_data(self):
        r = self.scrape("/loop")
        self.assertEqual(r["status_code"], 302)

    def test_404_is_data(self):
        r = self.scrape("/missing")
        self.assertEqual(r["status_code"], 404)
        self.assertEqual(r["url"], self.base + "/missing")
        self.assertEqual(r["title"], "Not Found")
        self.assertEqual(r["headings"], [{"level": 1, "text": "No such page"}])

    def test_egress_refusal_is_an_error_not_a_page(self):
        with self.assertRaises(PermissionError) as ctx:
            self.scrape("/refused")
        self.assertIn("egress proxy refused", str(ctx.exception))
        self.assertIn("loopback", str(ctx.exception))

    def test_unresolved_name_is_a_network_error_not_a_permission_error(self):
        with self.assertRaises(urllib.error.URLError) as ctx:
            self.scrape("/unresolved")
        self.assertNotIsInstance(ctx.exception, PermissionError)
        self.assertIn("nowhere.test does not resolve", str(ctx.exception))

    def test_500_is_data(self):
        r = self.scrape("/error")
        self.assertEqual(r["status_code"], 500)
        self.assertEqual(r["title"], "Server Error")
        self.assertEqual(r["links"], [{"href": self.base + "/home", "text": "Home"}])

    def test_non_html(self):
        r = self.scrape("/data.json")
        self.assertEqual(r["status_code"], 200)
        self.assertEqual(r["content_type"], "application/json")
        self.assertIsNone(r["title"])
        self.assertEqual(r["headings"], [])
        self.assertEqual(r["links"], [])

    def test_latin1_from_content_type(self):
        r = self.scrape("/latin1")
        self.assertEqual(r["title"], "Café Größe")
        self.assertEqual(r["headings"], [{"level": 1, "text": "Crème brûlée"}])

    def test_charset_from_meta(self):
        self.assertEqual(self.scrape("/meta-latin1")["title"], "Café")

    def test_invalid_utf8_is_replaced(self):
        self.assertEqual(self.scrape("/bad-utf8")["title"], "bad \ufffd\ufffd bytes")

    def test_unknown_charset_falls_back_to_utf8(self):
        self.assertEqual(self.scrape("/unknown-charset")["title"], "Café")

    def test_missing_content_type(self):
        r = self.scrape("/no-content-type")
        self.assertEqual(r["content_type"], "")
        self.assertEqual(r["title"], "Sniffed")
        r = self.scrape("/no-content-type-text")
        self.assertIsNone(r["title"])

    def test_links_are_capped(self):
        self.assertEqual(len(self.scrape("/links")["links"]), 100)
        r = self.scrape("/links", max_links=5)
        self.assertEqual([link["text"] for link in r["links"]], ["link 0", "link 1", "link 2", "link 3", "link 4"])
        self.assertEqual(self.scrape("/links", max_links=0)["links"], [])

    def test_body_is_capped(self):
        r = self.scrape("/big")
        self.assertEqual(r["title"], "Big")
        self.assertEqual(r["links"], [])  # the only link lies past the 5 MiB cap

    def test_timeout(self):
        start = time.monotonic()
        with self.assertRaises(OSError):  # socket.timeout / TimeoutError / URLError
            self.scrape("/slow", timeout=0.3)
        self.assertLess(time.monotonic() - start, 1.4)


class ParamsTest(unittest.TestCase):
    """Bad parameters fail before any request is made."""

    def test_invalid(self):
        cases = [
            ({}, "required"),
            ({"url": ""}, "required"),
            ({"url": 42}, "required"),
            ({"url": "ftp://127.0.0.1/x"}, "http:// or https://"),
            ({"url": "file:///etc/passwd"}, "http:// or https://"),
            ({"url": "javascript:alert(1)"}, "http:// or https://"),
            ({"url": "127.0.0.1/no-scheme"}, "http:// or https://"),
            ({"url": "http://"}, "no host"),
            ({"url": "http://127.0.0.1/", "timeout": 0}, "timeout"),
            ({"url": "http://127.0.0.1/", "timeout": "10"}, "timeout"),
            ({"url": "http://127.0.0.1/", "timeout": True}, "timeout"),
            ({"url": "http://127.0.0.1/", "max_links": -1}, "max_links"),
            ({"url": "http://127.0.0.1/", "max_links": 1.5}, "max_links"),
        ]
        for params, message in cases:
            with self.subTest(params=params):
                with mock.patch("urllib.request.OpenerDirector.open") as opened:
                    with self.assertRaisesRegex(ValueError, message):
                        scraper.scrape(params)
                    opened.assert_not_called()

    def test_params_must_be_a_dict(self):
        with self.assertRaisesRegex(ValueError, "JSON object"):
            scraper.scrape(["http://127.0.0.1/"])


if __name__ == "__main__":
    unittest.main()
