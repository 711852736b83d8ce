"""Polite fetching for knowledge-base sources: robots.txt, sitemaps, per-host limits, conditional GETs.

Every request goes through ``rag.fetching`` (the pinned transport: private addresses refused on every
request and redirect, at most 5 redirects) with the ``SOURCE_USER_AGENT``. Nothing here touches the
database: ``rag.sources`` runs ``page_fetch`` in worker threads and writes the results itself.
"""
from __future__ import annotations

import fnmatch
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from lxml import etree
from protego import Protego

from rag import fetching
from rag.web_content import page_links, page_main_content
from saas_bot.errors import ServiceError, ValidationFailed

# What a source's page may be, by Content-Type: HTML is reduced to its main content (Markdown); the others
# are stored as fetched and read by the extractor their extension picks (rag/extraction).
PAGE_SUFFIXES = {"text/html": ".html", "application/xhtml+xml": ".html", "text/plain": ".txt",
                 "text/markdown": ".md", "application/pdf": ".pdf",
                 "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx"}
SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
MAX_SITEMAP_BYTES = 50 * 1024 * 1024  # sitemaps.org: at most 50 MB (uncompressed) and 50,000 URLs a file
MAX_SITEMAPS = 50  # sitemap files read per run (an index and its children)
MAX_ROBOTS_BYTES = 500 * 1024  # RFC 9309 2.5: crawlers must parse at least 500 KiB


class HostLimiter:
    """At most ``concurrency`` requests at once and one start every ``1 / rate`` seconds per host.

    ``slow_down(host, seconds)`` raises a host's interval (robots.txt ``Crawl-delay``).
    """

    def __init__(self, *, concurrency: int, rate_per_second: float) -> None:
        self._concurrency = max(1, concurrency)
        self._interval = 1.0 / rate_per_second if rate_per_second > 0 else 0.0
        self._lock = threading.Lock()
        self._slots: dict[str, threading.Semaphore] = {}
        self._next_start: dict[str, float] = {}
        self._intervals: dict[str, float] = {}

    def slow_down(self, host: str, seconds: float) -> None:
        with self._lock:
            self._intervals[host] = max(self._interval, seconds)

    def acquire(self, host: str) -> None:
        with self._lock:
            slot = self._slots.setdefault(host, threading.Semaphore(self._concurrency))
        slot.acquire()
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start.get(host, 0.0))
            self._next_start[host] = start + self._intervals.get(host, self._interval)
        if start > now:
            time.sleep(start - now)

    def release(self, host: str) -> None:
        self._slots[host].release()


@dataclass
class Fetcher:
    """One run's HTTP side: a pinned client, the per-host limiter, and the bytes received (bodies).

    ``transport`` and ``resolver`` replace the far end and DNS (tests); the address check stays.
    """

    user_agent: str
    timeout: float
    max_bytes: int
    allow_private: bool = False
    concurrency: int = 4
    rate_per_second: float = 20.0
    max_crawl_delay: float = 10.0
    transport: httpx.BaseTransport | None = None
    resolver: fetching.Resolver = fetching.system_resolver
    bytes_received: int = 0
    _client: httpx.Client | None = field(default=None, repr=False)
    _limiter: HostLimiter | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._client = fetching.pinned_client(timeout=self.timeout, allow_private=self.allow_private,
                                              transport=self.transport, user_agent=self.user_agent,
                                              resolver=self.resolver)
        self._limiter = HostLimiter(concurrency=self.concurrency, rate_per_second=self.rate_per_second)

    def close(self) -> None:
        self._client.close()

    def get(self, url: str, *, headers: dict[str, str] | None = None, max_bytes: int | None = None
            ) -> fetching.Fetched:
        """GET ``url`` within the host's limits; raises as ``rag.fetching.url_fetch`` (ContentTooLarge is
        turned into ValidationFailed(code="document_too_large"))."""
        host = urlsplit(url).netloc.lower()
        limit = max_bytes or self.max_bytes
        self._limiter.acquire(host)
        try:
            fetched = fetching.url_fetch(url, max_bytes=limit, timeout=self.timeout, headers=headers,
                                         client=self._client)
        except fetching.ContentTooLarge:
            raise ValidationFailed(code="document_too_large", message=f"{url} is larger than {limit} bytes.") from None
        finally:
            self._limiter.release(host)
        with self._lock:
            self.bytes_received += len(fetched.body)
        return fetched

    def robots(self, url: str) -> "Robots":
        """The robots.txt rules of ``url``'s site (RFC 9309): a 4xx (none) allows everything; an unreachable
        file or a 5xx disallows everything (2.3.1.4). A Crawl-delay slows the host down."""
        parts = urlsplit(url)
        robots_url = f"{parts.scheme}://{parts.netloc}/robots.txt"
        try:
            fetched = self.get(robots_url, max_bytes=MAX_ROBOTS_BYTES)
        except ServiceError as exc:
            if exc.code == "document_url_forbidden":
                raise  # the site itself is refused: the run fails with that code
            status = (exc.detail or {}).get("status") if isinstance(exc.detail, dict) else None
            if status is not None and 400 <= status < 500:
                return Robots(None, self.user_agent)
            return Robots(None, self.user_agent, unreachable=f"{robots_url}: {exc.message}")
        rules = Protego.parse(fetched.body.decode("utf-8", "replace"))
        robots = Robots(rules, self.user_agent)
        delay = rules.crawl_delay(robots.agent)
        if delay:
            self._limiter.slow_down(parts.netloc.lower(), min(float(delay), self.max_crawl_delay))
        return robots


class Robots:
    """``allowed(url)`` by one site's robots.txt for our User-Agent's product token."""

    def __init__(self, rules: Protego | None, user_agent: str, *, unreachable: str = "") -> None:
        self._rules = rules
        self.agent = user_agent.split("/", 1)[0].split()[0] if user_agent.strip() else "*"
        self.unreachable = unreachable

    def allowed(self, url: str) -> bool:
        if self.unreachable:
            return False
        return True if self._rules is None else self._rules.can_fetch(url, self.agent)


def same_site(url: str, start: str) -> bool:
    """Same host as ``start`` and the same port, where the default ports of http and https count as one
    (``http://h/`` and ``https://h/`` are one site; ``https://h:8443/`` is another)."""
    a, b = urlsplit(url), urlsplit(start)
    if a.scheme not in ("http", "https") or (a.hostname or "").lower() != (b.hostname or "").lower():
        return False
    try:
        ports = (a.port, b.port)
    except ValueError:
        return False
    default = {"http": 80, "https": 443}
    port_a = ports[0] if ports[0] not in (None, default[a.scheme]) else None
    port_b = ports[1] if ports[1] not in (None, default.get(b.scheme)) else None
    return port_a == port_b


def patterns_of(text: str) -> list[str]:
    """The non-empty lines of a pattern field."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def path_matches(url: str, *, include: list[str], exclude: list[str]) -> bool:
    """True when ``url``'s path (with its query) matches an include pattern (or there are none) and no
    exclude pattern. Patterns are shell style (``fnmatch``, case-sensitive): ``/help/*``, ``*.pdf``."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if include and not any(fnmatch.fnmatchcase(path, p) for p in include):
        return False
    return not any(fnmatch.fnmatchcase(path, p) for p in exclude)


def sitemap_parse(body: bytes) -> tuple[list[str], list[str]]:
    """``(page URLs, child sitemap URLs)`` of a sitemap or sitemap index (sitemaps.org 0.9), in order.

    Entities and network access are off in the XML parser (no XXE). Raises ValidationFailed(code=
    "source_sitemap_invalid") for something that is not a sitemap.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=False)
    try:
        root = etree.fromstring(body, parser=parser)
    except etree.XMLSyntaxError as exc:
        raise ValidationFailed(code="source_sitemap_invalid", message=f"Not a sitemap (XML error: {exc}).") from None
    tag = etree.QName(root).localname
    locs = [(el.text or "").strip() for el in root.iter(f"{SITEMAP_NS}loc", "loc")]
    locs = [loc for loc in locs if loc]
    if tag == "urlset":
        return locs, []
    if tag == "sitemapindex":
        return [], locs
    raise ValidationFailed(code="source_sitemap_invalid", message=f"Not a sitemap (root element <{tag}>).")


@dataclass
class PageResult:
    """What fetching one page gave: ``status`` 200 or 304, or ``error`` (code, message, HTTP status)."""

    url: str
    depth: int
    status: int = 0
    final_url: str = ""
    etag: str = ""
    last_modified: str = ""
    file_suffix: str = ""
    data: bytes = b""
    title: str = ""
    links: list[str] = field(default_factory=list)
    error_code: str = ""
    error: str = ""
    http_status: int | None = None

    @property
    def gone(self) -> bool:
        """The server says the page does not exist (404 or 410)."""
        return self.http_status in (404, 410)


def page_fetch(fetcher: Fetcher, url: str, *, depth: int, etag: str = "", last_modified: str = "",
               want_links: bool = True) -> PageResult:
    """GET one page (conditionally when validators are given) and reduce it to what is stored: HTML to its
    main content as Markdown (``data``, suffix ``.md``) plus its links; other supported types as fetched.
    Never raises a ServiceError: a failure is in ``error_code`` / ``error``."""
    result = PageResult(url=url, depth=depth)
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        fetched = fetcher.get(url, headers=headers or None)
    except ServiceError as exc:
        result.error_code, result.error = exc.code, exc.message
        result.http_status = exc.detail.get("status") if isinstance(exc.detail, dict) else None
        return result
    result.status, result.final_url = fetched.status, fetched.url
    result.etag, result.last_modified = fetched.etag, fetched.last_modified
    if fetched.status == 304:
        return result
    suffix = PAGE_SUFFIXES.get(fetched.content_type)
    if suffix is None:
        result.error_code = "document_unsupported_type"
        result.error = f"{url} is '{fetched.content_type or 'unknown'}'."
        return result
    if suffix == ".html":
        if want_links:
            result.links = page_links(fetched.body, base_url=fetched.url)
        content = page_main_content(fetched.body, url=fetched.url)
        result.title, result.file_suffix = content.title, ".md"
        result.data = content.markdown.encode("utf-8")
    else:
        result.file_suffix, result.data = suffix, fetched.body
    return result
