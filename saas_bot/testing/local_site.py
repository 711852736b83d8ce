"""A local help-centre website served from generated fixtures on 127.0.0.1, for tests and benchmarks of
source syncing (rag/sources.py). A test double: product code never imports it.

What it serves (``LocalSite``), all generated from a seed, nothing read from disk:

- ``/`` links to every section ``/docs/s<i>/``; each section links to its articles ``/docs/s<i>/p<j>.html``.
  Every page carries the same boilerplate: a header navigation, a cookie banner, a sidebar of "popular
  articles" and a footer (``BOILERPLATE_SENTENCES``), around an ``<article>`` of generated sentences
  (``LocalSite.article_sentences(path)``).
- ``/sitemap.xml``: a sitemap index of two urlsets (``/sitemap-1.xml``, ``/sitemap-2.xml``) listing the articles.
- ``/robots.txt``: ``Disallow: /private/``; ``/private/secret.html`` is linked from the index.
- ``/loop/a`` and ``/loop/b`` redirect to each other (a redirect loop); ``/slow.html`` answers after
  ``slow_seconds``; both are linked from the index.
- Every article has an ``ETag`` and a ``Last-Modified`` (the index and sections an ETag of their body); ``If-None-Match`` / ``If-Modified-Since`` get a 304
  without a body. ``change(path)`` rewrites a page's article (new ETag and date), ``remove(path)`` makes it a
  404 and drops it from links and the sitemap, ``add(path)`` adds one.
- Counters: ``bytes_sent`` (status lines, headers and bodies, as written to the socket), ``requests``
  (per path), ``user_agents``.
"""
from __future__ import annotations

import email.utils
import hashlib
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from saas_bot.testing.local_http import LocalHTTPService

WORDS = ("account admin answer billing browser cache card change chat checkout colour company contact "
         "customer dashboard data delete device download email export feature file filter folder group help "
         "import invoice key language limit link login message mobile notification order page password "
         "payment plan policy privacy profile refund report request reset role search security setting share "
         "subscription support team template theme ticket token upload user webhook workspace").split()

BOILERPLATE_SENTENCES = [
    "We use cookies to improve your experience on our website.",
    "By continuing to browse you agree to our use of cookies and our privacy notice.",
    "Accept all cookies or manage your cookie preferences.",
    "Popular articles this week from our community forum.",
    "Subscribe to our newsletter for product news and special offers.",
    "Copyright Example Help Centre, all rights reserved worldwide.",
    "Follow us on social media for the latest announcements and events.",
    "Was this article helpful to you today?",
]
NAV_LABELS = ["Home", "Getting started", "Billing and plans", "Integrations", "Community", "Status page",
              "Contact sales", "Sign in"]


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(9, 16))]
    return (" ".join(words)).capitalize() + "."


@dataclass
class Page:
    """One served page: its article (title, paragraphs of sentences), version counter and validators."""

    path: str
    title: str
    paragraphs: list[list[str]]
    version: int = 1
    modified: float = field(default_factory=lambda: time.time() - 86400)

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha1(f"{self.path}:{self.version}".encode()).hexdigest()[:16] + '"'

    @property
    def last_modified(self) -> str:
        return email.utils.formatdate(self.modified, usegmt=True)


class _SiteHandler(BaseHTTPRequestHandler):
    """GETs of the site: counted (requests, user agents, bytes sent) and answered by ``LocalSite.respond``."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - http.server's name
        site = self.server.site
        with site._lock:
            site.requests[self.path] = site.requests.get(self.path, 0) + 1
            site.user_agents.add(self.headers.get("User-Agent", ""))
        status, headers, body = site.respond(self.path, self.headers)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            if body:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
            self.close_connection = True
            return
        with site._lock:
            site.bytes_sent += self._header_bytes + len(body)

    def flush_headers(self):
        self._header_bytes = sum(len(chunk) for chunk in getattr(self, "_headers_buffer", []))
        super().flush_headers()

    def log_message(self, *args):
        pass


class LocalSite(LocalHTTPService):
    """The generated site and its HTTP server on 127.0.0.1 (``start()`` / ``stop()``, or ``with``).

    Args:
        sections: how many sections; ``pages_per_section`` articles each (pages = sections x pages_per_section
            + the index + sections).
        paragraphs: paragraphs per article, 4 sentences each.
        port: 0 picks a free port.
        slow_seconds: how long ``/slow.html`` waits before answering.
    """

    handler_class = _SiteHandler
    server_attribute = "site"
    thread_name = "local-site"

    def __init__(self, *, sections: int = 2, pages_per_section: int = 3, paragraphs: int = 4, seed: int = 17,
                 port: int = 0, slow_seconds: float = 3.0) -> None:
        super().__init__("127.0.0.1", port)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.paragraph_count = paragraphs
        self.slow_seconds = slow_seconds
        self.sections = sections
        self.pages: dict[str, Page] = {}
        for s in range(sections):
            for p in range(pages_per_section):
                self.add(f"/docs/s{s}/p{p}.html")
        self.bytes_sent = 0
        self.requests: dict[str, int] = {}
        self.user_agents: set[str] = set()

    # --- the fixtures --------------------------------------------------------------------------------
    def add(self, path: str) -> Page:
        """Add an article at ``path`` (``/docs/s<i>/...``) with new generated text."""
        with self._lock:
            page = Page(path=path, title=f"Article {path.rsplit('/', 1)[-1].split('.')[0]} of "
                                         f"{path.split('/')[2]}: " + " ".join(self._rng.sample(WORDS, 3)),
                        paragraphs=self._paragraphs())
            self.pages[path] = page
            return page

    def change(self, path: str) -> Page:
        """Rewrite the article at ``path``: new sentences, a new ETag and Last-Modified."""
        with self._lock:
            page = self.pages[path]
            page.paragraphs = self._paragraphs()
            page.version += 1
            page.modified = time.time()
            return page

    def remove(self, path: str) -> None:
        """``path`` answers 404 from now on and is no longer linked or listed."""
        with self._lock:
            del self.pages[path]

    def article_sentences(self, path: str) -> list[str]:
        """The sentences of the article at ``path`` (what main-content extraction must keep)."""
        page = self.pages[path]
        return [sentence for paragraph in page.paragraphs for sentence in paragraph]

    def _paragraphs(self) -> list[list[str]]:
        return [[_sentence(self._rng) for _ in range(4)] for _ in range(self.paragraph_count)]

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # --- rendering -----------------------------------------------------------------------------------
    def _chrome(self, title: str, main: str) -> str:
        nav = "".join(f'<li><a href="/docs/s{i % max(self.sections, 1)}/">{label}</a></li>'
                      for i, label in enumerate(NAV_LABELS))
        popular = "".join(f'<li><a href="{p}">{self.pages[p].title}</a></li>' for p in sorted(self.pages)[:5])
        b = BOILERPLATE_SENTENCES
        return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} | Example Help"
                f"</title></head><body>"
                f'<div id="cookie-banner" class="cookie-consent"><p>{b[0]} {b[1]}</p>'
                f'<button>{b[2]}</button></div>'
                f'<header class="site-header"><a href="/">Example Help Centre</a><nav class="main-nav"><ul>{nav}'
                f"</ul></nav></header>"
                f'<div class="layout"><aside class="sidebar"><h3>{b[3]}</h3><ul>{popular}</ul></aside>'
                f"<main>{main}</main></div>"
                f'<footer class="site-footer"><p>{b[4]}</p><p>{b[5]}</p><p>{b[6]}</p>'
                f'<div class="feedback">{b[7]} <button>Yes</button> <button>No</button></div></footer>'
                f"</body></html>")

    def _article(self, page: Page) -> str:
        body = "".join(f"<p>{' '.join(paragraph)}</p>" for paragraph in page.paragraphs)
        section = page.path.split("/")[2]
        return (f"<article><h1>{page.title}</h1>{body}"
                f'<p class="breadcrumbs"><a href="/">Home</a> / <a href="/docs/{section}/">{section}</a></p>'
                f"</article>")

    def _section(self, section: str) -> str:
        items = "".join(f'<li><a href="{p}">{self.pages[p].title}</a></li>' for p in sorted(self.pages)
                        if p.startswith(f"/docs/{section}/"))
        return self._chrome(f"Section {section}", f"<h1>Section {section}</h1><ul>{items}</ul>")

    def _index(self) -> str:
        sections = "".join(f'<li><a href="/docs/s{i}/">Section s{i}</a></li>' for i in range(self.sections))
        extra = ('<li><a href="/private/secret.html">Internal notes</a></li><li><a href="/loop/a">Loop</a></li>'
                 '<li><a href="/slow.html">Slow page</a></li><li><a href="https://elsewhere.example/">Elsewhere'
                 '</a></li>')
        return self._chrome("Help centre", f"<h1>Help centre</h1><ul>{sections}{extra}</ul>")

    def _sitemap(self, part: int) -> str:
        paths = sorted(self.pages)
        half = (len(paths) + 1) // 2
        chosen = paths[:half] if part == 1 else paths[half:]
        urls = "".join(f"<url><loc>{self.url(p)}</loc></url>" for p in chosen)
        return ('<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/'
                f'sitemap/0.9">{urls}</urlset>')

    def _sitemap_index(self) -> str:
        items = "".join(f"<sitemap><loc>{self.url(f'/sitemap-{i}.xml')}</loc></sitemap>" for i in (1, 2))
        return ('<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/'
                f'sitemap/0.9">{items}</sitemapindex>')

    def respond(self, path: str, headers) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) for a GET of ``path`` with request ``headers``."""
        path = path.split("?", 1)[0]
        with self._lock:
            if path == "/robots.txt":
                return 200, {"Content-Type": "text/plain"}, b"User-agent: *\nDisallow: /private/\n"
            if path in ("/loop/a", "/loop/b"):
                return 302, {"Location": "/loop/b" if path == "/loop/a" else "/loop/a"}, b""
            if path == "/sitemap.xml":
                return 200, {"Content-Type": "application/xml"}, self._sitemap_index().encode()
            if path in ("/sitemap-1.xml", "/sitemap-2.xml"):
                return 200, {"Content-Type": "application/xml"}, self._sitemap(int(path[9])).encode()
            if path == "/":
                return self._by_content(self._index().encode(), headers)
            if path == "/private/secret.html":
                return 200, {"Content-Type": "text/html"}, self._chrome("Secret", "<p>Internal only.</p>").encode()
            parts = path.split("/")
            if len(parts) == 4 and parts[1] == "docs" and parts[3] == "" and any(
                    p.startswith(path) for p in self.pages):
                return self._by_content(self._section(parts[2]).encode(), headers)
            page = self.pages.get(path)
            if page is None and path != "/slow.html":
                return 404, {"Content-Type": "text/plain"}, b"Not found"
        if path == "/slow.html":
            time.sleep(self.slow_seconds)
            return 200, {"Content-Type": "text/html"}, self._chrome("Slow", "<p>Finally.</p>").encode()
        validators = {"ETag": page.etag, "Last-Modified": page.last_modified}
        if headers.get("If-None-Match") == page.etag:
            return 304, validators, b""
        since = headers.get("If-Modified-Since")
        if since and not headers.get("If-None-Match"):
            try:
                if email.utils.parsedate_to_datetime(since).timestamp() >= int(page.modified):
                    return 304, validators, b""
            except (TypeError, ValueError):
                pass
        with self._lock:
            html = self._chrome(page.title, self._article(page)).encode()
        return 200, {"Content-Type": "text/html; charset=utf-8", **validators}, html

    @staticmethod
    def _by_content(body: bytes, headers) -> tuple[int, dict[str, str], bytes]:
        """A generated list page: its ETag is a hash of its body (as nginx or a CDN would give), no date."""
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        if headers.get("If-None-Match") == etag:
            return 304, {"ETag": etag}, b""
        return 200, {"Content-Type": "text/html; charset=utf-8", "ETag": etag}, body

    # --- the server (saas_bot.testing.local_http: start, stop, port, context manager) -------------------
    @property
    def port(self) -> int:
        """The bound port once started; before, the port asked for (0 = any free one)."""
        return self._requested_port if self._server is None else super().port

    def reset_counters(self) -> None:
        with self._lock:
            self.bytes_sent = 0
            self.requests = {}
