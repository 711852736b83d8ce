"""The crawler's HTTP side without a network: a public site that redirects to a private address is refused
on the redirect; robots.txt rules for our User-Agent; sitemaps; path patterns; the per-host rate."""
import time

import httpx
import pytest

from rag import crawling
from saas_bot.errors import ValidationFailed

PUBLIC = "93.184.215.14"


def _fetcher(handler, **kw):
    resolver = lambda host, port: ["127.0.0.1"] if host in ("localhost", "127.0.0.1") else [PUBLIC]  # noqa: E731
    return crawling.Fetcher(user_agent="saas_bot-sync/1.0 (test)", timeout=2.0, max_bytes=10_000,
                            transport=httpx.MockTransport(handler), resolver=resolver, **kw)


def test_a_redirect_to_a_private_address_is_refused():
    seen = []

    def handler(request):
        seen.append(str(request.url))
        return httpx.Response(302, headers={"Location": "http://localhost/admin"})

    result = crawling.page_fetch(_fetcher(handler), "http://help.example/page", depth=0)
    assert result.error_code == "document_url_forbidden"
    assert seen == [f"http://{PUBLIC}/page"]  # the private address was never connected to


def test_robots_rules_for_our_agent_and_crawl_delay():
    def handler(request):
        assert request.headers["User-Agent"] == "saas_bot-sync/1.0 (test)"
        return httpx.Response(200, text="User-agent: saas_bot-sync\nDisallow: /internal/\nCrawl-delay: 0.2\n"
                                        "\nUser-agent: *\nDisallow: /\n")

    fetcher = _fetcher(handler, rate_per_second=0)
    robots = fetcher.robots("http://help.example/start")
    assert robots.allowed("http://help.example/docs/a") and not robots.allowed("http://help.example/internal/x")
    started = time.monotonic()
    for _ in range(3):
        fetcher.get("http://help.example/docs/a")
    assert time.monotonic() - started >= 0.35  # three starts 0.2 s apart (Crawl-delay)


@pytest.mark.parametrize("status, allowed", [(404, True), (503, False)])
def test_missing_robots_allows_and_unreachable_robots_disallows(status, allowed):
    robots = _fetcher(lambda request: httpx.Response(status)).robots("http://help.example/")
    assert robots.allowed("http://help.example/a") is allowed


def test_sitemap_parse_and_xxe():
    pages, children = crawling.sitemap_parse(
        b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<url><loc> https://h.example/a </loc></url><url><loc>https://h.example/b</loc></url></urlset>")
    assert (pages, children) == (["https://h.example/a", "https://h.example/b"], [])
    assert crawling.sitemap_parse(b'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
                                  b"<sitemap><loc>https://h.example/s1.xml</loc></sitemap></sitemapindex>") == \
        ([], ["https://h.example/s1.xml"])
    evil = (b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>&x;</loc></url></urlset>')
    pages, _ = crawling.sitemap_parse(evil)
    assert not any("root:" in p for p in pages)
    with pytest.raises(ValidationFailed) as bad:
        crawling.sitemap_parse(b"<html><body>not a sitemap</body></html>")
    assert bad.value.code == "source_sitemap_invalid"


def test_patterns_and_same_site():
    assert crawling.path_matches("https://h.example/help/a?x=1", include=["/help/*"], exclude=[])
    assert not crawling.path_matches("https://h.example/blog/a", include=["/help/*"], exclude=[])
    assert not crawling.path_matches("https://h.example/help/a.pdf", include=[], exclude=["*.pdf"])
    assert crawling.same_site("http://H.example/x", "https://h.example:443/")  # default ports are one site
    assert not crawling.same_site("https://h.example:8443/x", "https://h.example/")
    assert crawling.same_site("https://h.example/x", "https://h.example/")
    assert not crawling.same_site("https://other.example/", "https://h.example/")
