"""Text extraction from uploaded files: what a reader sees, in reading order, within bounds.

Formats (docs/retrieval.md, "Extraction"): PDF (pypdf, one section per page), DOCX (mammoth -> HTML),
HTML (lxml, every visible word), Markdown (markdown-it-py tokens), reStructuredText (docutils), plain
text. Every format's text goes through one hygiene step (``hygiene``) and one list of template
directives (``directives``). ``extract`` runs in the calling process; ingestion runs it in a bounded
child process (``sandbox.extract_bounded``).
"""
from rag.extraction.base import (SUPPORTED_EXTENSIONS, Bounds, DocumentOverLimit, Extracted, Section,
                                 UnreadableDocument, UnsupportedDocument, require_supported)
from rag.extraction.core import extract

__all__ = ["SUPPORTED_EXTENSIONS", "Bounds", "DocumentOverLimit", "Extracted", "Section", "UnreadableDocument",
           "UnsupportedDocument", "extract", "require_supported"]
