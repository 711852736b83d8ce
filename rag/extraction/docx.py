"""DOCX: checked as a ZIP within the bounds, then converted by mammoth to HTML and read by the HTML reader.

mammoth (chosen over python-docx, docx2python and a hand-written walker, measured in docs/retrieval.md)
keeps the body's order (tables in place, under their heading), reads content controls (``w:sdt``),
tracked insertions (``w:ins``) and hyperlinks, drops deletions (``w:del``) and headers/footers, and
writes a merged cell once (``colspan`` / ``rowspan``). Images are not converted (no bytes read, no
alt text: Word's generated descriptions are noise). Known gap: Word's hidden text (``w:vanish``) is
read, mammoth does not model it.

Before mammoth opens the file, every member it reads (the XML parts; media are never read) is
inflated once as a stream, counting bytes and paragraphs and keeping nothing: a ZIP bomb (declared
or actual size past ``Bounds.max_inflated_bytes``) or a body past ``Bounds.max_docx_paragraphs`` is
refused within seconds and in constant memory.
"""
from __future__ import annotations

import io
import re
import zipfile

from rag.extraction.base import Bounds, DocumentOverLimit, UnreadableDocument
from rag.extraction.builder import SectionBuilder
from rag.extraction.html import read_html

_PARAGRAPH = re.compile(rb"<(?:[A-Za-z][\w.-]*:)?p[\s>/]")
_TEXT_RUN = re.compile(rb"<w:t(?:\s[^>]*)?>([^<]*)")
_STYLE_MAP = """
p[style-name='Title'] => h1:fresh
p[style-name='Subtitle'] => p:fresh
"""
_CHUNK = 1 << 20


def check_zip(data: bytes, bounds: Bounds, *, body_member: str = "word/document.xml",
              file_name: str = "document") -> None:
    """Inflate every member of the ZIP ``data`` as a stream, discarding the bytes.

    Raises:
        UnreadableDocument(code="document_unreadable"): not a ZIP, or no ``body_member``.
        DocumentOverLimit(code="document_too_large_inflated"): declared or actual inflated bytes, all
            members together, past ``bounds.max_inflated_bytes``.
        DocumentOverLimit(code="document_too_many_paragraphs"): ``body_member`` holds more paragraphs
            than ``bounds.max_docx_paragraphs``.
        DocumentOverLimit(code="document_too_large_extracted"): its text runs (``w:t``) hold more than
            ``bounds.max_chars`` characters (counted in the XML, before mammoth spends time on it).
    """
    from rag.extraction.base import CharBudget

    text_budget = CharBudget(limit=bounds.max_chars, file_name=file_name)
    limit = bounds.max_inflated_bytes
    too_large = DocumentOverLimit(
        code="document_too_large_inflated",
        message=f"The file inflates to more than {limit:,} bytes; it is refused "
                "as a possible ZIP bomb.")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise UnreadableDocument(code="document_unreadable",
                                 message=f"The file is not a valid DOCX (not a ZIP archive: {exc}).") from exc
    members = archive.infolist()
    if body_member not in {m.filename for m in members}:
        raise UnreadableDocument(code="document_unreadable", message=f"The file is not a DOCX (no {body_member}).")
    if len(members) > 10_000:
        raise too_large
    members = [m for m in members if m.filename.lower().endswith((".xml", ".rels"))]  # what mammoth reads
    if sum(m.file_size for m in members) > limit:
        raise too_large
    total = 0
    for member in members:
        counting = member.filename == body_member
        paragraphs = 0
        carry = b""
        with archive.open(member) as stream:
            while True:
                piece = stream.read(_CHUNK)
                if not piece:
                    break
                total += len(piece)
                if total > limit:
                    raise too_large
                if counting:
                    window = carry + piece
                    paragraphs += len(_PARAGRAPH.findall(window))
                    # Text of runs that end in this window; an unfinished run is carried to the next one.
                    cut = window.rfind(b"<")
                    text_budget.take(sum(len(m) for m in _TEXT_RUN.findall(window, 0, cut if cut >= 0 else None)))
                    carry = window[cut:] if 0 <= cut and len(window) - cut < 4096 else window[-8:]
                    paragraphs -= len(_PARAGRAPH.findall(carry))  # counted again with the next piece
                    if paragraphs > bounds.max_docx_paragraphs:
                        raise DocumentOverLimit(
                            code="document_too_many_paragraphs",
                            message=f"The document has more than {bounds.max_docx_paragraphs:,} paragraphs"
                                    "; split it into smaller files.")


def read_docx(data: bytes, builder: SectionBuilder, bounds: Bounds) -> str:
    """Feed a DOCX to ``builder``; returns its title (core properties' title, else the first heading)."""
    import mammoth

    check_zip(data, bounds, file_name=builder.budget.file_name)
    result = mammoth.convert_to_html(io.BytesIO(data), style_map=_STYLE_MAP,
                                     convert_image=mammoth.images.img_element(lambda image: {}))
    heading_title = read_html(result.value, builder)
    return _core_title(data) or heading_title


def _core_title(data: bytes) -> str:
    """``dc:title`` of docProps/core.xml ("" when absent); the member was size-checked by check_zip."""
    from lxml import etree

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            core = archive.read("docProps/core.xml")
    except (KeyError, zipfile.BadZipFile):
        return ""
    try:
        root = etree.fromstring(core, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError:
        return ""
    title = root.find("{http://purl.org/dc/elements/1.1/}title")
    return (title.text or "").strip() if title is not None else ""
