"""Bounds that hold for every format: each hostile file fails with its own code and stops nothing else.

The files are small versions of the issue's (rag/tests/hostile_files.py) against lowered settings;
bench/hostile_documents.py runs the full sizes against the defaults and records time and memory.
Extraction runs in the sandbox child, as in production.
"""
import re

import pytest

from rag.models import Document
from rag.services import document_add, documents_ingest
from rag.tests import hostile_files

pytestmark = pytest.mark.django_db


def ingest(company, files: dict[str, bytes]) -> dict[str, Document]:
    documents = [document_add(company=company, file_name=name, data=data, schedule=False)[0]
                 for name, data in files.items()]
    return {d.file_name: d for d in documents_ingest(company=company, documents=documents)}


def assert_failed(document: Document, code: str) -> None:
    assert (document.status, document.error_code) == ("failed", code), (document.file_name, document.error)
    assert document.chunk_count == 0 and document.error
    # Company admins read it (admin, API): it says what was too large, never an internal setting's name.
    assert not re.search(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b", document.error), document.error


def test_each_bound_fails_its_document_with_a_code_and_the_others_are_indexed(company, settings):
    settings.DOCUMENT_MAX_INFLATED_BYTES = 8 * 1024 * 1024
    settings.DOCUMENT_MAX_DOCX_PARAGRAPHS = 1_000
    settings.DOCUMENT_MAX_PDF_PAGES = 20
    settings.DOCUMENT_MAX_PDF_CONTENT_BYTES = 256 * 1024
    settings.DOCUMENT_MAX_EXTRACTED_CHARS = 5_000
    result = ingest(company, {
        "bomb.docx": hostile_files.docx_zip_bomb(32 * 1024 * 1024),
        "paragraphs.docx": hostile_files.docx_many_paragraphs(5_000),
        "pages.pdf": hostile_files.pdf_shared_stream(pages=50, stream_bytes=1_000),
        "shared-stream.pdf": hostile_files.pdf_shared_stream(pages=3, stream_bytes=300_000),
        "long.txt": ("A sentence of the long file. " * 400).encode(),
        "deep.html": hostile_files.html_nested_divs(40_000),
        "fine.md": b"# Fine\n\nThis one is indexed.",
    })
    assert_failed(result["bomb.docx"], "document_too_large_inflated")
    assert_failed(result["paragraphs.docx"], "document_too_many_paragraphs")
    assert_failed(result["pages.pdf"], "document_too_many_pages")
    assert_failed(result["shared-stream.pdf"], "document_pdf_content_too_large")
    assert_failed(result["long.txt"], "document_too_large_extracted")
    assert_failed(result["deep.html"], "document_too_deeply_nested")
    assert result["fine.md"].status == "ready" and result["fine.md"].chunk_count == 1


def test_an_upload_shares_one_character_allowance(company, settings):
    settings.DOCUMENT_MAX_UPLOAD_EXTRACTED_CHARS = 1_500
    text = ("Refunds are paid within fourteen days. " * 25).encode()  # ~1,000 characters each
    result = ingest(company, {"a.txt": text, "b.txt": text + b" Second file."})
    assert result["a.txt"].status == "ready"
    assert_failed(result["b.txt"], "upload_too_large_extracted")


def test_cpu_time_and_memory_are_bounded_in_the_child_and_it_recovers(company, settings):
    from rag.extraction import sandbox

    forest = hostile_files.html_nested_div_forest(12 * 1024 * 1024)
    settings.DOCUMENT_EXTRACTION_CPU_SECONDS = 1
    (slow,) = ingest(company, {"slow.html": forest}).values()
    assert_failed(slow, "document_extraction_timeout")
    settings.DOCUMENT_EXTRACTION_CPU_SECONDS = 60
    settings.DOCUMENT_EXTRACTION_MEMORY_MB = 160
    (hungry,) = ingest(company, {"hungry.html": forest + b"<!-- other bytes -->"}).values()
    assert_failed(hungry, "document_extraction_memory")
    (after,) = ingest(company, {"after.md": b"# After\n\nThe next file is read by a fresh child."}).values()
    assert after.status == "ready"
    sandbox.shutdown()


def test_extraction_runs_outside_this_process(company, monkeypatch):
    """A reader that would crash the process crashes the child only; the document gets a code."""
    import os

    from rag.extraction import sandbox

    (document,) = ingest(company, {"ok.md": b"# Ok\n\nRead in the child."}).values()
    assert document.status == "ready"
    child = sandbox.child_pid()
    assert child is not None and child != os.getpid()
    os.kill(child, 9)  # as if the kernel's OOM killer had stopped it mid-document
    (again,) = ingest(company, {"again.md": b"# Again\n\nA new child reads it."}).values()
    assert again.status == "ready" and sandbox.child_pid() not in (None, child)


def test_a_child_that_keeps_memory_after_a_big_document_is_replaced(company, settings):
    """CPython keeps a big document's heap: the child that read it must not carry it into the next one."""
    from rag.extraction import sandbox

    sandbox.shutdown()
    settings.DOCUMENT_EXTRACTION_RECYCLE_MB = 60  # idle about 16 MB; after this page about 95
    (small,) = ingest(company, {"small.md": b"# Small\n\nA small file leaves the child small."}).values()
    assert small.status == "ready"
    first = sandbox.child_pid()
    assert first is not None  # below the bound: kept for the next document
    (big,) = ingest(company, {"big.html": hostile_files.html_nested_div_forest(6 * 1024 * 1024)}).values()
    assert big.status == "ready"
    assert sandbox.child_pid() is None  # it kept more than 60 MB: replaced before the next document
    (after,) = ingest(company, {"after.md": b"# After\n\nRead by a fresh child."}).values()
    assert after.status == "ready" and sandbox.child_pid() not in (None, first)
    sandbox.shutdown()
