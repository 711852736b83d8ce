"""PDF: pypdf, one section per page (and per heading within it), within the page and content-stream bounds.

A file with only an owner password (printing/copying restrictions) opens with the empty user password,
as in every reader. Decoded content streams are capped by pypdf's own decompression limit (set to the
bound) and summed over the pages, so a small file whose pages share one huge stream is refused before
its text is parsed. Running headers and footers are removed; lines are joined into paragraphs.

Headings come from the fonts (a PDF has no heading markup): pypdf reports each text run's font and size
(``visitor_text``); the body size is the size most characters of the document are set in, and a short line
all of whose characters are larger than it (``HEADING_SIZE_RATIO``), or all bold or italic in another font family
than the body's and not a code font (a sans-serif heading over serif text), is a heading: it starts a section, so a passage
is cited and chosen under its own heading instead of "page 2". Levels follow the sizes, largest first.
"""
from __future__ import annotations

import io
import math
import re

from rag.extraction import hygiene
from rag.extraction.base import Bounds, CharBudget, DocumentOverLimit, UnreadableDocument
from rag.extraction.builder import SectionBuilder

_ITEM = re.compile(r"^(?:[•◦▪‣∙·●○■□\-–*]\s+|\d{1,3}[.)]\s+)")
_BULLET = re.compile(r"^[•◦▪‣∙·●○■□\-–*]\s+")
_SENTENCE_END = re.compile(r"[.!?:;]['\")\]]?$")
# A heading line is set at least this much larger than the body text (1.1: 12 pt body, 13.2 pt and up).
HEADING_SIZE_RATIO = 1.1
HEADING_MAX_WORDS = 16
# A page drawn in more text runs than this is read without styles (no headings): a real page has a few
# thousand; a hostile one-page file had 261,224, and styling them cost a third more CPU than reading them.
MAX_STYLED_RUNS_PER_PAGE = 20_000
# Marks a heading line (and its level) through hygiene and the running-line filter: private-use characters.
_HEADING_MARK = re.compile("^\ue000(\\d)\ue001(.*)$")


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
                                message=f"The PDF has {count:,} pages; the limit is {bounds.max_pdf_pages:,}.")
    total = 0
    page_lines: list[list[tuple[str, tuple | None]]] = []
    raw_budget = CharBudget(limit=budget.limit, file_name=budget.file_name)  # stops early, before the builder
    too_large = DocumentOverLimit(
        code="document_pdf_content_too_large",
        message=f"The PDF's pages hold more than {bounds.max_pdf_content_bytes:,} bytes of drawing instructions"
                "; it cannot be read within the limits.")
    for page in reader.pages:
        try:
            contents = page.get_contents()
            total += len(contents.get_data()) if contents is not None else 0
        except LimitReachedError:
            raise too_large from None
        if total > bounds.max_pdf_content_bytes:
            raise too_large
        runs: list[tuple] = []
        try:  # the visitor only keeps pypdf's arguments: styles are worked out once the page is read
            text = page.extract_text(visitor_text=lambda *run: runs.append(run)) or ""
        except LimitReachedError:
            raise too_large from None
        raw_budget.take(len(text))
        styled = len(runs) <= MAX_STYLED_RUNS_PER_PAGE and sum(len(r[0]) for r in runs) == len(text)
        page_lines.append(_styled_lines(runs) if styled else [(line, None) for line in text.split("\n")])
    pages = _mark_headings(page_lines)
    for number, text in enumerate(drop_running_lines(pages), start=1):
        builder.new_page(number)
        body: list[str] = []
        for line in text.split("\n"):
            mark = _HEADING_MARK.match(line)
            if mark is None:
                body.append(line)
                continue
            for block in paragraphs("\n".join(body)):
                builder.block(block)
            body = []
            builder.heading(mark.group(2), level=int(mark.group(1)))
        for block in paragraphs("\n".join(body)):
            builder.block(block)
    title = ""
    try:
        if reader.metadata and reader.metadata.title:
            title = hygiene.clean_line(str(reader.metadata.title))
    except Exception:  # a broken info dictionary is no reason to lose the text
        title = ""
    return title


def _run_size(cm, tm, size) -> float:
    """A text run's rendered size in points: the font size scaled by the text and transformation matrices."""
    try:
        return round(float(size) * math.hypot(float(tm[2]), float(tm[3])) * math.hypot(float(cm[2]), float(cm[3])), 1)
    except (TypeError, ValueError, IndexError):
        return 0.0


def _font_name(font) -> str:
    """The run's font name without its subset prefix ("BAAAAA+DejaVuSans-Bold" -> "DejaVuSans-Bold")."""
    try:
        name = str((font or {}).get("/BaseFont", "")).lstrip("/")
    except Exception:  # a broken font dictionary
        return ""
    return name.split("+", 1)[-1]


def _family(font: str) -> str:
    return re.split(r"[-,]", font, maxsplit=1)[0].lower()


def _is_emphasis(font: str) -> bool:
    """Bold or italic (headings are set in one or the other when not in a larger size)."""
    return bool(re.search(r"bold|black|heavy|semibold|demi|italic|oblique", font, re.I))


def _is_monospace(family: str) -> bool:
    return bool(re.search(r"mono|courier|consol|code", family))


def _styled_lines(runs: list[tuple]) -> list[tuple[str, tuple | None]]:
    """The page's lines, each with (smallest size, largest size, all bold or italic?, font families, visible
    characters) of its visible characters, from pypdf's ``visitor_text`` calls (text, cm, tm, font
    dictionary, size), whose texts, joined, are the page's text."""
    lines: list[tuple[str, tuple | None]] = []
    text, sizes, bold, families = "", [], True, set()
    names: dict[int, str] = {}

    def end_line() -> None:
        lines.append((text, (min(sizes), max(sizes), bold, frozenset(families), len("".join(text.split())))
                      if sizes else None))

    for run_text, cm, tm, font_dict, font_size in runs:
        size = font = None
        pieces = run_text.split("\n")
        for index, piece in enumerate(pieces):
            if index:
                end_line()
                text, sizes, bold, families = "", [], True, set()
            text += piece
            if piece.strip():
                if size is None:
                    size = _run_size(cm, tm, font_size)
                    font = names.get(id(font_dict))
                    if font is None:
                        font = names[id(font_dict)] = _font_name(font_dict)
                sizes.append(size)
                bold = bold and _is_emphasis(font)
                families.add(_family(font))
    end_line()
    return lines


def _mark_headings(pages: list[list[tuple[str, tuple | None]]]) -> list[str]:
    """Each page's text (cleaned), heading lines prefixed with their mark and level (module docstring)."""
    chars: dict[float, int] = {}
    body_families: dict[str, int] = {}
    for lines in pages:
        for _, style in lines:
            if style:
                chars[style[0]] = chars.get(style[0], 0) + style[4]
                if not style[2]:
                    for family in style[3]:
                        body_families[family] = body_families.get(family, 0) + style[4]
    body = max(chars, key=chars.get) if chars else 0.0
    body_family = max(body_families, key=body_families.get) if body_families else ""

    def is_heading(line: str, style: tuple | None) -> bool:
        words = line.split()
        if not style or not body or not words or len(words) > HEADING_MAX_WORDS or _ITEM.match(line.strip()):
            return False
        if line.rstrip().endswith((".", ",", ";")) or not any(c.isalpha() for c in line):
            return False
        low, _, bold, families, _ = style
        # Same size: all bold or italic, in another family than the body's and not a code font.
        return low >= body * HEADING_SIZE_RATIO or (bold and low >= body and bool(body_family)
                                                    and body_family not in families
                                                    and not any(_is_monospace(f) for f in families))

    headings = [[is_heading(line, style) for line, style in lines] for lines in pages]
    heading_sizes = sorted({style[1] for lines, flags in zip(pages, headings)
                            for (_, style), flag in zip(lines, flags) if flag}, reverse=True)
    out = []
    for lines, flags in zip(pages, headings):
        kept = []
        previous_level = None
        for (line, style), flag in zip(lines, flags):
            if flag:
                level = min(heading_sizes.index(style[1]) + 1, 6)
                if level == previous_level:  # a heading wrapped onto the next line: one heading
                    kept[-1] += " " + hygiene.clean_line(line)
                else:
                    kept.append(f"\ue000{level}\ue001" + hygiene.clean_line(line))
                previous_level = level
            else:
                kept.append(line)
                previous_level = None if line.strip() else previous_level
        out.append(hygiene.clean("\n".join(kept)))
    return out


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
