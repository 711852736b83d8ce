"""The main content of a fetched web page (the article without navigation, banners, sidebars and footers)
and the links on it.

Main content is trafilatura's (https://trafilatura.readthedocs.io, a maintained extractor with a published
evaluation): Markdown output keeps headings, lists and tables, so the page is stored as a ``.md`` document
and split by its sections like any other. Measured on the local test site's boilerplate pages
(rag/tests/test_web_content.py, docs/knowledge-base.md): every article sentence kept, no cookie-banner,
navigation, sidebar or footer sentence kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urldefrag, urljoin, urlsplit

import lxml.html
import trafilatura
from lxml import etree


@dataclass(frozen=True)
class PageContent:
    """``title`` (may be empty) and ``markdown`` (empty when the page has no main content, e.g. a list of
    links)."""

    title: str
    markdown: str


def page_main_content(html: str | bytes, *, url: str = "") -> PageContent:
    """Extract the main content of ``html`` as Markdown, with the page's title.

    ``url`` only helps trafilatura resolve relative references. Never raises on bad HTML: a page it cannot
    parse has no main content.
    """
    try:
        document = trafilatura.bare_extraction(html, url=url or None, with_metadata=True, include_comments=False,
                                               include_tables=True, include_links=False, include_images=False,
                                               output_format="python")
        markdown = trafilatura.extract(html, url=url or None, output_format="markdown", include_comments=False,
                                       include_tables=True, include_links=False, include_images=False,
                                       with_metadata=False) or ""
    except (ValueError, TypeError, etree.LxmlError):
        return PageContent(title="", markdown="")
    title = (getattr(document, "title", None) or "").strip() if document is not None else ""
    return PageContent(title=title[:300], markdown=markdown.strip())


def page_links(html: str | bytes, *, base_url: str) -> list[str]:
    """Every http(s) link of ``html`` (``<a href>``), absolute, without its ``#fragment``, in page order,
    each once. ``<base href>`` is honoured; ``rel="nofollow"`` links are left out."""
    try:
        root = lxml.html.fromstring(html)
    except (ValueError, etree.LxmlError):
        return []
    base = base_url
    for element in root.iter("base"):
        if element.get("href"):
            base = urljoin(base_url, element.get("href").strip())
            break
    found: dict[str, None] = {}
    for anchor in root.iter("a"):
        href = (anchor.get("href") or "").strip()
        if not href or "nofollow" in (anchor.get("rel") or "").lower():
            continue
        try:
            absolute = urldefrag(urljoin(base, href))[0]
        except ValueError:
            continue
        if urlsplit(absolute).scheme in ("http", "https"):
            found.setdefault(absolute, None)
    return list(found)
