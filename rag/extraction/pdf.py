"""PDF: pypdf, one section per page, within the page and content-stream bounds.

A file with only an owner password (printing/copying restrictions) opens with the empty user password,
as in every reader. Decoded content streams are capped by pypdf's own decompression limit (set to the
bound) and summed over the pages, so a small file whose pages share one huge stream is refused before
its text is parsed. Running headers and footers are removed; lines are joined into paragraphs.
"""
from __future__ import annotations

import io
import re

from rag.extraction import hygiene
from rag.extraction.base import Bounds, CharBudget, DocumentOverLimit, UnreadableDocument
from rag.extraction.builder import SectionBuilder

_ITEM = re.compile(r"^(?:[•◦▪‣∙·●○■□\-–*]\s+|\d{1,3}[.)]\s+)")
_BULLET = re.compile(r"^[•◦▪‣∙·●○■□\-–*]\s+")
_SENTENCE_END = re.compile(r"[.!?:;]['\")\]]?$")


def _configure(bounds: Bounds) -> None:
    import pypdf

    limit = bounds.max_pdf_content_bytes
    try:
        pypdf.overwrite_configuration(
            zlib_maximum_output_length=limit, lzw_maximum_output_length=limit,
            run_length_maximum_output_length=limit, array_based_stream_maximum_output_length=limit,
            maximum_declared_stream_length=limit)
    except (AttributeError, TypeError):  # an older pypdf without Configuration: its defaults (75 MB) apply
        pass


def read_pdf(data: bytes, builder: SectionBuilder, bounds: Bounds, budget: CharBudget) -> str:
    """Feed a PDF's pages to ``builder`` (``Section.page`` = page number); returns the metadata title or "".

    Raises:
        UnreadableDocument(code="document_encrypted"): a user password is needed to open it.
        DocumentOverLimit(code="document_too_many_pages" | "document_pdf_content_too_large").
    """
    import pypdf
    from pypdf.errors import LimitReachedError

    _configure(bounds)
    reader = pypdf.PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")
        except Exception:  # unsupported algorithm, broken dictionary
            opened = 0
        if not opened:
            raise UnreadableDocument(code="document_encrypted",
                                     message="The PDF needs a password to open; upload it unprotected.")
    count = len(reader.pages)
    if count > bounds.max_pdf_pages:
        raise DocumentOverLimit(code="document_too_many_pages",
                                message=f"The PDF has {count:,} pages; the limit is {bounds.max_pdf_pages:,} "
                                        "(DOCUMENT_MAX_PDF_PAGES).")
    total = 0
    pages: list[str] = []
    raw_budget = CharBudget(limit=budget.limit, file_name=budget.file_name)  # stops early, before the builder
    too_large = DocumentOverLimit(
        code="document_pdf_content_too_large",
        message=f"The PDF's pages hold more than {bounds.max_pdf_content_bytes:,} bytes of drawing instructions "
                "(DOCUMENT_MAX_PDF_CONTENT_BYTES); it cannot be read within the limits.")
    for page in reader.pages:
        try:
            contents = page.get_contents()
            total += len(contents.get_data()) if contents is not None else 0
        except LimitReachedError:
            raise too_large from None
        if total > bounds.max_pdf_content_bytes:
            raise too_large
        try:
            text = page.extract_text() or ""
        except LimitReachedError:
            raise too_large from None
        raw_budget.take(len(text))
        pages.append(hygiene.clean(text))
    for number, text in enumerate(drop_running_lines(pages), start=1):
        builder.new_page(number)
        for block in paragraphs(text):
            builder.block(block)
    title = ""
    try:
        if reader.metadata and reader.metadata.title:
            title = hygiene.clean_line(str(reader.metadata.title))
    except Exception:  # a broken info dictionary is no reason to lose the text
        title = ""
    return title


def paragraphs(text: str) -> list[str]:
    """A page's lines as blocks: lines joined into paragraphs (a line ending a sentence ends one), list
    items ("•", "-", "1.") one per line in one block, hyphenated line breaks joined."""
    blocks: list[str] = []
    lines: list[str] = []
    items: list[str] = []

    def flush_paragraph() -> None:
        if lines:
            blocks.append(hygiene.join_lines("\n".join(lines)))
            lines.clear()

    def flush_items() -> None:
        if items:
            blocks.append("\n".join(items))
            items.clear()

    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            flush_paragraph()
            flush_items()
            continue
        if _ITEM.match(line):
            flush_paragraph()
            items.append(_BULLET.sub("- ", line))
            continue
        if items and not _SENTENCE_END.search(items[-1]):
            items[-1] = hygiene.join_lines(items[-1] + "\n" + line)
            continue
        flush_items()
        lines.append(line)
        if _SENTENCE_END.search(line):
            flush_paragraph()
    flush_paragraph()
    flush_items()
    return blocks


def drop_running_lines(pages: list[str]) -> list[str]:
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
