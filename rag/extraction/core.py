"""``extract``: one file's bytes -> title and sections, in this process (the sandbox calls it in its child)."""
from __future__ import annotations

from pathlib import PurePath
from typing import Mapping

from rag.extraction import hygiene
from rag.extraction.base import (Bounds, CharBudget, DocumentOverLimit, Extracted, UnreadableDocument,
                                 UnsupportedDocument, require_supported)
from rag.extraction.builder import SectionBuilder


def _includes_as_markdown(includes: Mapping[str, bytes | str] | None, bounds: Bounds) -> dict[str, str]:
    from rag.extraction.text import decode

    out: dict[str, str] = {}
    remaining = bounds.max_include_bytes
    for name, body in (includes or {}).items():
        raw = body.encode("utf-8") if isinstance(body, str) else body
        if len(raw) > remaining:
            continue
        remaining -= len(raw)
        try:
            out[PurePath(name).name] = body if isinstance(body, str) else decode(body)
        except ValueError:
            continue
    return out


def _includes_as_text(includes: dict[str, str], bounds: Bounds) -> dict[str, str]:
    """Included Markdown rendered to plain text, for include directives met in other formats' text."""
    from rag.extraction.markdown import read_markdown

    out = {}
    for name, source in includes.items():
        builder = SectionBuilder(CharBudget(limit=bounds.max_include_bytes * 2), strip_directives=False)
        read_markdown(source, builder)
        out[name] = "\n\n".join(s.text for s in builder.finish())
    return out


def extract(*, file_name: str, data: bytes, includes: Mapping[str, bytes | str] | None = None,
            bounds: Bounds | None = None) -> Extracted:
    """Extract readable text from ``data`` according to the extension of ``file_name``, in this process.

    Ingestion calls it through ``rag.extraction.sandbox.extract_bounded`` (a child process with CPU and
    memory limits); tests and tools may call it directly.

    Args:
        includes: file name -> content of files that include directives (``{!x.md!}``, ``--8<--``) may
            name (the same upload or folder, or the company's documents); others are dropped.
        bounds: limits (``Bounds()`` defaults when None).

    Returns:
        Extracted: the title (through hygiene, at most 300 characters) and non-empty sections in
        reading order, their text in the contract of ``Section``.

    Raises:
        UnsupportedDocument(code="document_unsupported_type"): unknown extension.
        UnreadableDocument(code="document_unreadable" | "document_encrypted" | "document_empty").
        DocumentOverLimit: a bound of ``bounds`` was passed (codes in its docstring).
    """
    suffix = require_supported(file_name)
    bounds = bounds or Bounds()
    fallback_title = PurePath(file_name).stem.replace("-", " ").replace("_", " ").strip().capitalize()
    budget = CharBudget(limit=bounds.max_chars, file_name=file_name)
    try:
        markdown_includes = _includes_as_markdown(includes, bounds)
        is_markdown = suffix in (".md", ".markdown")
        builder = SectionBuilder(budget, strip_directives=not is_markdown,
                                 includes=None if is_markdown else _includes_as_text(markdown_includes, bounds))
        title = _read(suffix, data, builder, bounds, budget, markdown_includes)
    except (UnsupportedDocument, UnreadableDocument, DocumentOverLimit):
        raise
    except MemoryError:
        raise DocumentOverLimit(code="document_extraction_memory",
                                message=f"'{file_name}' needs more memory to read than extraction may use.") from None
    except Exception as exc:  # parsers raise many types on corrupt input; the parser's words last, for support
        kind = _FORMAT_NAMES.get(suffix, suffix.lstrip(".").upper())
        raise UnreadableDocument(
            code="document_unreadable",
            message=f"'{file_name}' could not be read: it is damaged or not a {kind} file "
                    f"(the reader said {type(exc).__name__}: {exc})"[:1000]
        ) from exc
    sections = [s for s in builder.finish() if s.text.strip()]
    if not sections:
        raise UnreadableDocument(code="document_empty", message=f"'{file_name}' contains no text to index.")
    title = hygiene.clean_line(title or "")
    if not title and suffix == ".pdf":  # the first heading found by its font (rag/extraction/pdf.py), else the first line
        title = builder.first_heading or builder.any_heading or sections[0].text.split("\n", 1)[0][:200]
    return Extracted(title=(title or fallback_title)[:300], sections=sections)


_FORMAT_NAMES = {".pdf": "PDF", ".docx": "Word (DOCX)", ".html": "HTML", ".htm": "HTML", ".md": "Markdown",
                 ".markdown": "Markdown", ".rst": "reStructuredText", ".txt": "text"}


def _read(suffix: str, data: bytes, builder: SectionBuilder, bounds: Bounds, budget: CharBudget,
          includes: dict[str, str]) -> str:
    from rag.extraction.text import decode

    if suffix == ".pdf":
        from rag.extraction.pdf import read_pdf

        return read_pdf(data, builder, bounds, budget)
    if suffix == ".docx":
        from rag.extraction.docx import read_docx

        return read_docx(data, builder, bounds)
    source = decode(data)
    if suffix in (".html", ".htm"):
        from rag.extraction.html import read_html

        return read_html(source, builder)
    if suffix in (".md", ".markdown"):
        from rag.extraction.markdown import read_markdown

        return read_markdown(source, builder, includes=includes)
    from rag.extraction.rst import looks_like_rst, read_rst

    if suffix == ".rst" or looks_like_rst(source):
        return read_rst(source, builder)
    from rag.extraction.text import read_text

    return read_text(source, builder)
