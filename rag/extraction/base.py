"""What extraction returns, the errors it raises, and the bounds it works within.

No Django here: this module is imported by the extraction child process (``rag.extraction.worker``),
which must stay small (its address space is limited, see ``rag.extraction.sandbox``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import PurePath

from saas_bot.errors import ValidationFailed

SUPPORTED_EXTENSIONS = {".txt", ".md", ".markdown", ".rst", ".html", ".htm", ".pdf", ".docx"}


class UnsupportedDocument(ValidationFailed):
    """The file type is not one we can read."""


class UnreadableDocument(ValidationFailed):
    """The file claims a supported type but its content cannot be read (corrupt, encrypted, empty)."""


class DocumentOverLimit(ValidationFailed):
    """The file exceeds one of the extraction bounds (``Bounds``, the sandbox's CPU time or memory).

    Codes: ``document_too_large_extracted`` (characters), ``document_too_large_inflated`` (ZIP members),
    ``document_too_many_pages`` / ``document_pdf_content_too_large`` (PDF),
    ``document_too_many_paragraphs`` (DOCX), ``document_too_deeply_nested`` (HTML),
    ``document_extraction_timeout`` (CPU or wall time),
    ``document_extraction_memory`` (address space), ``upload_too_large_extracted`` (the upload's total).
    """


@dataclass
class Section:
    """A run of text under one heading (or on one PDF page).

    ``text`` follows the text contract of docs/retrieval.md ("Extraction"): plain readable text, blocks
    separated by one blank line, list items one per line ("- " / "N. "), table rows one per line with
    cells joined by " | ", no markup. ``section`` is the last heading above it ("" before the first).
    """

    text: str
    section: str = ""
    page: int | None = None


@dataclass
class Extracted:
    """What a file yields: a title and its sections in reading order."""

    title: str
    sections: list[Section]

    def to_dict(self) -> dict:
        return {"title": self.title, "sections": [asdict(s) for s in self.sections]}

    @classmethod
    def from_dict(cls, data: dict) -> "Extracted":
        return cls(title=data["title"], sections=[Section(**s) for s in data["sections"]])


@dataclass(frozen=True)
class Bounds:
    """Limits one document's extraction must stay within (settings ``DOCUMENT_MAX_*``, README).

    Defaults are the settings' defaults; the sources of the numbers are in docs/retrieval.md ("Bounds").

    Attributes:
        max_chars: characters of extracted text (all sections), checked as text is produced.
        max_inflated_bytes: bytes of a ZIP container's (DOCX's) XML parts, inflated, declared and actual.
        max_pdf_pages: pages of a PDF.
        max_pdf_content_bytes: decoded content-stream bytes of a PDF, summed over its pages.
        max_docx_paragraphs: ``w:p`` elements in a DOCX's body.
        max_include_bytes: bytes of included files (``{!file.md!}``, ``--8<--``) per document.
    """

    max_chars: int = 5_000_000
    max_inflated_bytes: int = 64 * 1024 * 1024
    max_pdf_pages: int = 2_000
    max_pdf_content_bytes: int = 16 * 1024 * 1024
    max_docx_paragraphs: int = 100_000
    max_include_bytes: int = 1024 * 1024

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CharBudget:
    """Counts extracted characters and raises as soon as a document goes past ``limit``."""

    limit: int
    used: int = 0
    file_name: str = field(default="document")

    def take(self, count: int) -> None:
        """Raises:
            DocumentOverLimit(code="document_too_large_extracted"): past the limit.
        """
        self.used += count
        if self.used > self.limit:
            raise DocumentOverLimit(
                code="document_too_large_extracted",
                message=f"'{self.file_name}' holds more than {self.limit:,} characters of text"
                        "; split it into smaller files.")


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
