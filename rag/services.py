"""Writes on documents: add (a file, pasted text, a URL), replace content, delete.

Indexing them is rag/ingestion.py; every change is published as a batch by rag/document_changes.py
(listeners: knowledge-base versions, docs/knowledge-base.md). The names below the imports are re-exported
so callers keep one entry point for document writes.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import PurePath
from urllib.parse import urlparse

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Count, Sum
from django.utils.text import slugify

from rag import fetching
from rag.extraction import require_supported
from rag.models import Collection, Document
from saas_bot.errors import NotFound, ValidationFailed
from saas_bot.tasking import enqueue_on_commit
from tenants.models import Company
from rag.document_changes import (DocumentChange, DocumentChangeBatch, document_change_batch,  # noqa: F401
                                  document_changes_subscribe, document_changes_unsubscribe, _record_change)
from rag.chunk_store import _document_write_chunks  # noqa: F401
from rag.ingestion import (ProgressCallback, document_ingest, document_reindex, documents_ingest,  # noqa: F401
                           documents_sweep, ingestion_configuration_problem)

logger = logging.getLogger("saas_bot.rag")


def _checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()



def document_add(*, company: Company, file_name: str, data: bytes, title: str | None = None,
                 schedule: bool = True, collection: Collection | None = None,
                 source_url: str = "", batch: DocumentChangeBatch | None = None) -> tuple[Document, bool]:
    """Store an uploaded file as a pending Document and schedule its ingestion.

    Args:
        file_name: the original name; its extension picks the extractor.
        data: the file's bytes (at most ``DOCUMENT_MAX_BYTES``).
        schedule: enqueue ingestion on commit (the ``ingest`` command batches instead).
        collection: optional Collection of the same company.
        source_url: the page the bytes were fetched from (``document_add_url``).
        batch: the ``document_change_batch`` this addition belongs to (None: published alone).

    Returns:
        (document, created). Same content already stored for this company (same
        SHA-256): the existing document and ``created=False``; nothing is indexed twice.

    Raises:
        ValidationFailed(code="document_unsupported_type" | "document_too_large" | "document_empty"):
            checked before anything is stored.
        QuotaExceeded(code="quota_documents" | "quota_storage"): plan limit reached.
    """
    from billing.services import quota_check_document_add

    name = PurePath(file_name).name or "document"
    _content_check(name, data)
    checksum = _checksum(data)
    existing = Document.objects.for_company(company).filter(checksum=checksum).first()
    if existing:
        return existing, False
    held = Document.objects.for_company(company).aggregate(count=Count("id"), size=Sum("size_bytes"))
    quota_check_document_add(company=company, size_bytes=len(data), current_documents=held["count"],
                             current_bytes=held["size"] or 0)
    try:
        with transaction.atomic():
            if collection is not None and collection.company_id != company.id:
                raise NotFound(code="collection_not_found", message="Collection not found.")
            document = Document(company=company, title=(title or "").strip()[:300] or PurePath(name).stem,
                                file_name=name, checksum=checksum, size_bytes=len(data),
                                collection=collection, source_url=source_url[:2000])
            document.file.save(name, ContentFile(data), save=False)
            document.save()
            if schedule:
                from rag.tasks import document_ingest_task

                enqueue_on_commit(document_ingest_task, document.id)
            _record_change(batch, company=company, origin="upload",
                           change=DocumentChange(action="added", document_id=document.id, checksum=checksum))
    except IntegrityError:  # the same content was added concurrently
        return Document.objects.for_company(company).get(checksum=checksum), False
    return document, True


def _content_check(name: str, data: bytes) -> None:
    require_supported(name)
    if len(data) > settings.DOCUMENT_MAX_BYTES:
        raise ValidationFailed(
            code="document_too_large",
            message=f"'{name}' is {len(data)} bytes; the limit is {settings.DOCUMENT_MAX_BYTES} bytes.",
        )
    if not data:
        raise ValidationFailed(code="document_empty", message=f"'{name}' is empty.")


def document_replace_content(*, company: Company, document_id: int, file_name: str, data: bytes,
                             title: str | None = None, schedule: bool = True,
                             batch: DocumentChangeBatch | None = None) -> Document:
    """Give a document of ``company`` new content (a re-fetched page): new file, checksum and size, status
    pending, ingestion scheduled. Its old chunks keep answering until the new ones replace them in one
    transaction (``documents_ingest``). The same content as now: nothing happens.

    Args:
        file_name: the new file's name; its extension picks the extractor (as ``document_add``).
        title: a new title (None keeps it).
        schedule: enqueue ingestion on commit (a sync run ingests its batch itself).
        batch: the ``document_change_batch`` this change belongs to (None: published alone).

    Returns:
        The document, refreshed.

    Raises:
        NotFound(code="document_not_found"): missing or another company's.
        ValidationFailed(code="document_unsupported_type" | "document_too_large" | "document_empty").
        ValidationFailed(code="document_duplicate"): another document of the company has this content
            (detail: ``{"document_id": id}``); nothing changed.
    """
    name = PurePath(file_name).name or "document"
    _content_check(name, data)
    checksum = _checksum(data)
    with transaction.atomic():
        document = Document.objects.for_company(company).select_for_update().filter(id=document_id).first()
        if document is None:
            raise NotFound(code="document_not_found", message="Document not found.")
        if document.checksum == checksum:
            return document
        other = Document.objects.for_company(company).filter(checksum=checksum).exclude(id=document_id).first()
        if other is not None:
            raise ValidationFailed(code="document_duplicate",
                                   message=f"“{other.title}” already has this content.",
                                   detail={"document_id": other.id})
        storage, old_name = document.file.storage, document.file.name
        document.file.save(name, ContentFile(data), save=False)
        document.file_name, document.checksum, document.size_bytes = name, checksum, len(data)
        if title is not None and title.strip():
            document.title = title.strip()[:300]
        document.status, document.progress, document.error, document.error_code = Document.Status.PENDING, 0, "", ""
        document.ingest_attempts = 0
        document.save(update_fields=["file", "file_name", "checksum", "size_bytes", "title", "status", "progress",
                                     "error", "error_code", "ingest_attempts"])
        if old_name and old_name != document.file.name:
            transaction.on_commit(lambda: storage.delete(old_name))
        if schedule:
            from rag.tasks import document_ingest_task

            enqueue_on_commit(document_ingest_task, document.id)
        _record_change(batch, company=company, origin="replace",
                       change=DocumentChange(action="changed", document_id=document.id, checksum=checksum))
    return document


def document_add_text(*, company: Company, title: str, text: str, collection: Collection | None = None,
                      batch: DocumentChangeBatch | None = None) -> tuple[Document, bool]:
    """Store pasted text as a Markdown document (headings with ``#`` become sections) and schedule it.

    Returns and raises as ``document_add``; also ValidationFailed(code="document_title_missing").
    """
    title = (title or "").strip()
    if not title:
        raise ValidationFailed(code="document_title_missing", message="Give the text a title.")
    stem = slugify(title)[:80] or "text"
    return document_add(company=company, file_name=f"{stem}.md", data=(text or "").strip().encode("utf-8"),
                        title=title, collection=collection, batch=batch)


# What a fetched page may be, by Content-Type, and the extension that picks its extractor.
URL_CONTENT_TYPES = {"text/html": ".html", "application/xhtml+xml": ".html", "text/plain": ".txt",
                     "text/markdown": ".md", "application/pdf": ".pdf",
                     "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx"}


def document_add_url(*, company: Company, url: str, title: str | None = None,
                     collection: Collection | None = None,
                     batch: DocumentChangeBatch | None = None) -> tuple[Document, bool]:
    """Fetch ``url`` (http/https, public hosts only, up to 5 redirects, at most ``DOCUMENT_MAX_BYTES``) and store it.

    The Content-Type picks the extractor (``URL_CONTENT_TYPES``: HTML, plain text, Markdown, PDF, DOCX).
    Fetching is ``rag.fetching.url_fetch`` (httpx, ``DOCUMENT_URL_TIMEOUT_SECONDS``): every address the host
    resolves to must be public and the connection goes to the checked address, on every redirect;
    ``DOCUMENT_URL_ALLOW_PRIVATE`` lifts the address rule (development, tests).

    Returns and raises as ``document_add``, and:
        ValidationFailed(code="document_url_invalid"): not a well-formed http(s) URL.
        ValidationFailed(code="document_url_forbidden"): the host (or a redirect's) is a private/local address.
        ValidationFailed(code="document_url_unreachable"): network error or a non-2xx status.
        ValidationFailed(code="document_unsupported_type"): a Content-Type we cannot read.
        ValidationFailed(code="document_too_large"): the body is over the limit.
    """
    url = (url or "").strip() if isinstance(url, str) else ""
    fetching.url_check(url)
    limit = settings.DOCUMENT_MAX_BYTES

    def accept(content_type: str) -> None:
        if content_type not in URL_CONTENT_TYPES:
            raise ValidationFailed(code="document_unsupported_type",
                                   message=f"{url} is '{content_type or 'unknown'}'; supported: "
                                           f"{', '.join(sorted(URL_CONTENT_TYPES))}.")

    try:
        fetched = fetching.url_fetch(url, max_bytes=limit, timeout=settings.DOCUMENT_URL_TIMEOUT_SECONDS,
                                     allow_private=settings.DOCUMENT_URL_ALLOW_PRIVATE, accept=accept)
    except fetching.ContentTooLarge:
        raise ValidationFailed(code="document_too_large", message=f"{url} is larger than {limit} bytes.") from None
    suffix = URL_CONTENT_TYPES[fetched.content_type]
    body = fetched.body
    parsed = urlparse(url)
    stem = slugify(PurePath(parsed.path).stem or parsed.netloc)[:80] or "page"
    return document_add(company=company, file_name=f"{stem}{suffix}", data=bytes(body), title=title,
                        collection=collection, source_url=url, batch=batch)


@transaction.atomic
def document_delete(*, company: Company, document_id: int, batch: DocumentChangeBatch | None = None) -> None:
    """Delete a document of ``company``: it leaves the company's documents at once and the bots' answers
    when its knowledge-base version goes live (at once, unless a golden question holds it).

    The row, file and chunks are kept (``deleted_at`` set) while a version worth keeping holds the
    document, so a rollback brings it back; ``rag.versions.versions_cleanup`` removes them for good
    after (docs/knowledge-base.md "Versions"). A source page that owned it no longer does.

    Args:
        batch: the ``document_change_batch`` this removal belongs to (None: published alone).

    Raises:
        NotFound(code="document_not_found"): missing, already deleted, or another company's.
    """
    from django.utils import timezone

    from rag.models import SourcePage

    document = Document.objects.for_company(company).select_for_update().filter(id=document_id).first()
    if document is None:
        raise NotFound(code="document_not_found", message="Document not found.")
    Document.all_objects.filter(id=document.id).update(deleted_at=timezone.now())
    SourcePage.objects.filter(document_id=document.id).update(document=None, owns_document=False)
    _record_change(batch, company=company, origin="delete",
                   change=DocumentChange(action="removed", document_id=document.id, checksum=document.checksum))
