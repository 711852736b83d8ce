"""Text extraction from uploaded files, keeping where each piece sits (section, page).

Formats: PDF (pypdf, one section per page), DOCX (python-docx, Heading styles),
HTML (BeautifulSoup, h1-h6), Markdown (langchain-text-splitters'
MarkdownHeaderTextSplitter), reStructuredText and plain text (underlined
headings, as RST writes them). Anything else raises ``UnsupportedDocument``.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import PurePath

from saas_bot.errors import ValidationFailed

SUPPORTED_EXTENSIONS = {".txt", ".md", ".markdown", ".rst", ".html", ".htm", ".pdf", ".docx"}


class UnsupportedDocument(ValidationFailed):
    """The file type is not one we can read."""


class UnreadableDocument(ValidationFailed):
    """The file claims a supported type but its content cannot be read (corrupt, encrypted, empty)."""


@dataclass
class Section:
    """A run of text under one heading (or on one PDF page)."""

    text: str
    section: str = ""
    page: int | None = None


@dataclass
class Extracted:
    """What a file yields: a title and its sections in reading order."""

    title: str
    sections: list[Section]


def require_supported(file_name: str) -> str:
    """The lower-cased extension of ``file_name`` if we can read it.

    Raises:
        UnsupportedDocument(code="document_unsupported_type"): not in ``SUPPORTED_EXTENSIONS``.
    """
    suffix = PurePath(file_name).suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise UnsupportedDocument(
            code="document_unsupported_type",
            message=f"'{file_name}': unsupported file type '{suffix or '(none)'}'. "
            f"Supported: {', '.join(sorted(SUPPORTED_EXTENSIONS))}.",
        )
    return suffix


def extract(*, file_name: str, data: bytes) -> Extracted:
    """Extract text from ``data`` according to the extension of ``file_name``.

    Raises:
        UnsupportedDocument(code="document_unsupported_type"): unknown extension.
        UnreadableDocument(code="document_unreadable"): corrupt file or no text in it.
    """
    suffix = require_supported(file_name)
    fallback_title = PurePath(file_name).stem.replace("-", " ").replace("_", " ").strip().capitalize()
    try:
        if suffix == ".pdf":
            result = _extract_pdf(data, fallback_title)
        elif suffix == ".docx":
            result = _extract_docx(data, fallback_title)
        elif suffix in (".html", ".htm"):
            result = _extract_html(_decode(data), fallback_title)
        elif suffix in (".md", ".markdown"):
            result = _extract_markdown(_decode(data), fallback_title)
        else:
            result = _extract_rst(_decode(data), fallback_title)
    except (UnsupportedDocument, UnreadableDocument):
        raise
    except Exception as exc:  # parsers raise many types on corrupt input; the reason goes to the admin
        raise UnreadableDocument(
            code="document_unreadable", message=f"'{file_name}' could not be read: {type(exc).__name__}: {exc}"
        ) from exc
    result.sections = [s for s in result.sections if s.text.strip()]
    if not result.sections:
        raise UnreadableDocument(code="document_empty", message=f"'{file_name}' contains no text to index.")
    return result


def _decode(data: bytes) -> str:
    """Text of a text-format file: UTF-16 with a byte-order mark, else UTF-8, Windows-1252, Latin-1.

    Raises:
        ValueError: the bytes hold NUL characters (a binary file with a text extension); ``extract``
            reports it as ``document_unreadable``.
    """
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # Windows "Unicode" text files
        return data.decode("utf-16")
    if b"\x00" in data[:65536]:
        raise ValueError("this is a binary file, not text (it contains NUL bytes)")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _extract_pdf(data: bytes, fallback_title: str) -> Extracted:
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        raise UnreadableDocument(code="document_encrypted", message="The PDF is encrypted; upload it unprotected.")
    pages = [_clean(page.extract_text() or "") for page in reader.pages]
    pages = _drop_running_lines(pages)
    sections = [Section(text=text, page=number) for number, text in enumerate(pages, start=1)]
    title = ""
    if reader.metadata and reader.metadata.title:
        title = str(reader.metadata.title).strip()
    if not title:
        first = next((s.text for s in sections if s.text), "")
        title = first.split("\n", 1)[0][:200] if first else fallback_title
    return Extracted(title=title or fallback_title, sections=sections)


def _drop_running_lines(pages: list[str]) -> list[str]:
    """Remove running headers and footers: a first or last line (digits ignored, so "Page 2 of 3"
    matches) that repeats on more than half of the pages of a document of 2+ pages."""
    if len(pages) < 2:
        return pages
    split = [p.split("\n") for p in pages]

    def key(line: str) -> str:
        return re.sub(r"\d+", "#", " ".join(line.split())).lower()

    counts: dict[str, int] = {}
    for lines in split:
        for line in {key(x) for x in (lines[:2] + lines[-2:]) if x.strip()}:
            counts[line] = counts.get(line, 0) + 1
    running = {k for k, n in counts.items() if n > len(pages) / 2}
    cleaned = []
    for lines in split:
        head, tail = lines[:2], lines[-2:] if len(lines) > 2 else []
        middle = lines[2:-2] if len(lines) > 4 else lines[2:] if len(lines) > 2 else []
        if len(lines) <= 4:
            kept = [x for x in lines if key(x) not in running]
        else:
            kept = [x for x in head if key(x) not in running] + middle + [x for x in tail if key(x) not in running]
        cleaned.append("\n".join(kept).strip())
    return cleaned


def _extract_docx(data: bytes, fallback_title: str) -> Extracted:
    import docx
    from docx.text.hyperlink import Hyperlink

    document = docx.Document(io.BytesIO(data))
    sections: list[Section] = []
    current, lines, title = "", [], ""
    for paragraph in document.paragraphs:
        # paragraph.text drops text inside hyperlinks; iter_inner_content yields runs and hyperlinks.
        text = "".join(
            item.text for item in paragraph.iter_inner_content() if isinstance(item, Hyperlink) or hasattr(item, "text")
        ).strip()
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        if style.startswith("Heading") or style == "Title":
            if lines:
                sections.append(Section(text="\n".join(lines), section=current))
                lines = []
            current = text
            if not title and text:
                title = text
        elif text:
            lines.append(text)
    for table in document.tables:
        for row in table.rows:
            lines.append(" | ".join(cell.text.strip() for cell in row.cells))
    if lines:
        sections.append(Section(text="\n".join(lines), section=current))
    title = (document.core_properties.title or "").strip() or title or fallback_title
    return Extracted(title=title, sections=sections)


def _extract_html(html: str, fallback_title: str) -> Extracted:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    for tag in soup(["script", "style", "nav", "footer", "header", "noscript", "template", "svg", "form", "aside"]):
        tag.decompose()
    h1 = soup.find("h1")
    # The first <h1> is the article's own title; <title> often carries the site name too.
    title = " ".join(h1.get_text(" ", strip=True).split()) if h1 else ""
    if not title and soup.title:
        title = soup.title.get_text(" ", strip=True)
    body = soup.body or soup
    sections: list[Section] = []
    current, lines = "", []
    headings = {"h1", "h2", "h3", "h4", "h5", "h6"}
    blocks = {"p", "li", "pre", "tr", "dt", "dd", "blockquote", "figcaption"}
    for element in body.find_all(list(headings | blocks)):
        if element.name in headings:
            if lines:
                sections.append(Section(text="\n".join(lines), section=current))
                lines = []
            current = " ".join(element.get_text(" ", strip=True).split())
            if not title:
                title = current
            continue
        if element.find_parent(list(blocks)):  # nested blocks are read with their parent
            continue
        if element.name == "pre":
            text = element.get_text().strip("\n")
        elif element.name == "tr":
            cells = [" ".join(c.get_text().split()) for c in element.find_all(["td", "th"])]
            text = " | ".join(c for c in cells if c)
        else:
            # No separator between inline elements: "click <b>Share</b>, then" stays "click Share, then".
            text = " ".join(element.get_text().split())
        if text:
            lines.append(("- " if element.name == "li" else "") + text)
    if lines:
        sections.append(Section(text="\n".join(lines), section=current))
    if not sections:  # no block markup: take the visible text
        text = _clean(body.get_text("\n", strip=True))
        sections = [Section(text=text)]
    return Extracted(title=title or fallback_title, sections=sections)


def _extract_markdown(text: str, fallback_title: str) -> Extracted:
    """Markdown is rendered to HTML by markdown-it-py (CommonMark + tables), then read like HTML,
    so emphasis markers, link syntax and list bullets never reach an answer."""
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").enable("table").render(text)
    return _extract_html(html, fallback_title)


# An RST heading: a text line followed (and optionally preceded) by a line of one repeated
# punctuation character at least as long as the text (docutils' rule for section titles).
_RST_ADORNMENT = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}\s*$")


def _extract_rst(text: str, fallback_title: str) -> Extracted:
    lines = _clean(text).split("\n")
    sections: list[Section] = []
    current, body, title = "", [], ""
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        is_heading = (
            line.strip()
            and not _RST_ADORNMENT.match(line)
            and _RST_ADORNMENT.match(nxt)
            and len(nxt.rstrip()) >= len(line.rstrip())
        )
        if is_heading:
            if body and body[-1] and _RST_ADORNMENT.match(body[-1]):
                body.pop()  # the overline of an over-and-underlined title
            if "\n".join(body).strip():
                sections.append(Section(text=_clean("\n".join(body)), section=current))
            body = []
            current = line.strip()
            title = title or current
            i += 2
            continue
        body.append(line)
        i += 1
    if "\n".join(body).strip():
        sections.append(Section(text=_clean("\n".join(body)), section=current))
    return Extracted(title=title or fallback_title, sections=sections)
