"""Knowledge-base versions (issue 17, item 3; docs/knowledge-base.md "Versions"); golden questions are rag/golden.py.

A *revision* is one indexing of a document: ``documents_ingest`` writes a document's chunks under a new
revision number (``Chunk.revision``, the document's ``revision`` counter) beside its older ones, *not
live* (``Chunk.live = false``, and its BM25 postings kept under the negated company id, so the lexical
leg, the vocabulary and the typo check never see them). A *version* (``KnowledgeBaseVersion``) is one
batch of document changes (rag/services.py ``DocumentChangeBatch``: an upload, a replace, a delete, a sync
run) and, once built, the map ``{document id: revision}`` that answers in it.

Life of a version:

1. ``version_record_batch`` (called by rag/services.py in the transaction that makes the batch) creates
   it *building*, with what changed.
2. ``versions_advance`` (after every ingestion, and right after recording) builds every building
   version whose added/changed documents are all indexed (ready or failed): its revisions are the live
   version's with its own changes applied (a removed document out; an added or changed one at its newest
   indexed revision; a failed one keeps its live revision).
3. With golden questions, the candidate is checked (``golden_check``): each question is answered
   against the candidate's chunks inside a transaction that is rolled back, and against the live
   version, and scored by rag.answer_evaluation. It goes live when it passes the company's threshold
   (``KnowledgeBase.golden_threshold``; empty: no question that passed on the live version fails),
   otherwise it is *held* with the results. Without golden questions it goes live at once.
4. Going live (``_switch``) is one transaction under the knowledge-base row's ``FOR UPDATE`` lock:
   the chunks of revisions leaving are marked not live, those entering live, BM25 statistics adjusted,
   ``KnowledgeBase.live_version`` set. Every search reads the embedding model under ``FOR SHARE`` of
   that row in its own statement first (rag/retrieval.py ``chunk_search``) and keeps the lock until it
   is done, so a search sees the chunks of exactly one version.
5. Chunks of revisions that no version worth keeping references are deleted after a switch: kept are
   the live version's, held and building versions' (and each document's newest revision), and those of
   the last ``RAG_VERSIONS_KEPT`` versions that were live (rollback targets).

A delete (rag/services.py ``document_delete``) only marks the document deleted: its row, file and chunks
stay, and its removal goes live with its version like any other change (a golden question can hold it).
Rolling back to a version that held the document brings it back; cleanup removes a deleted document for
good once no version worth keeping holds it.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from rag.chunk_store import _corpus_stat_add
from rag.golden import GoldenReport, golden_check
from rag.knowledge_base import knowledge_base_get
from rag.models import Document, GoldenQuestion, KnowledgeBase, KnowledgeBaseVersion

logger = logging.getLogger("saas_bot.rag")

_LOCK_CLASS = 17017  # pg_advisory_xact_lock(class, company id): one version step at a time per company
_NUMBER_LOCK_CLASS = 17018  # the same, for numbering new versions (held only while one is created)
Status = KnowledgeBaseVersion.Status


def _company_lock(company_id: int, *, wait: bool = True, lock_class: int = _LOCK_CLASS) -> bool:
    """Take the company's version lock until the transaction ends; ``wait=False``: only if free (True if taken)."""
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [lock_class, int(company_id)])
            return True
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [lock_class, int(company_id)])
        return bool(cursor.fetchone()[0])


# -- recording -----------------------------------------------------------------------------------------

def version_record_batch(batch) -> KnowledgeBaseVersion | None:
    """Create the building version of a ``rag.services.DocumentChangeBatch`` and try to build it.

    Called by rag/services.py where the batch is made (inside its transaction, if any). Returns the
    version, or None for an empty batch.
    """
    if not batch.changes:
        return None
    titles = dict(Document.all_objects.filter(id__in=[c.document_id for c in batch.changes])
                  .values_list("id", "title"))
    changes, seen = [], set()
    for change in batch.changes:
        key = (change.action, change.document_id)
        if key in seen:
            continue
        seen.add(key)
        changes.append({"action": change.action, "document_id": change.document_id,
                        "title": titles.get(change.document_id, "")})
    with transaction.atomic():
        knowledge_base_get(batch.company_id)  # searches lock the row; a switch needs it
        _company_lock(batch.company_id, lock_class=_NUMBER_LOCK_CLASS)  # numbering only: never behind a check
        last = (KnowledgeBaseVersion.objects.filter(company_id=batch.company_id)
                .order_by("-number").values_list("number", flat=True).first()) or 0
        version = KnowledgeBaseVersion.objects.create(
            company_id=batch.company_id, number=last + 1, origin=batch.origin[:20], origin_id=batch.origin_id,
            changes=changes, added=sum(c["action"] == "added" for c in changes),
            changed=sum(c["action"] == "changed" for c in changes),
            removed=sum(c["action"] == "removed" for c in changes))
    if connection.in_atomic_block:
        # Inside the caller's transaction (an upload or a delete in a request): never wait behind a golden
        # check that holds the version lock; if it is busy, build after the commit instead.
        if versions_advance(batch.company_id, wait=False) is None:
            from rag.tasks import versions_advance_task
            from saas_bot.tasking import enqueue_on_commit

            enqueue_on_commit(versions_advance_task, batch.company_id, background=True)
    else:
        versions_advance(batch.company_id)
    version.refresh_from_db()
    return version


# -- building ------------------------------------------------------------------------------------------

def _live_revisions(company_id: int) -> dict[int, int]:
    """{document id: revision} of the chunks live now (the live version's, or the state before versions)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT document_id, revision FROM rag_chunk WHERE company_id = %s AND live",
                       [company_id])
        return {int(d): int(r) for d, r in cursor.fetchall()}


def _candidate(company_id: int, changes: list[dict]) -> dict[int, int]:
    """The live revisions with ``changes`` applied (see the module docstring, step 2)."""
    revisions = _live_revisions(company_id)
    ids = [c["document_id"] for c in changes]
    documents = {d.id: d for d in Document.objects.filter(company_id=company_id, id__in=ids)}  # not deleted
    for change in changes:
        document = documents.get(change["document_id"])
        if change["action"] == "removed" or document is None:
            revisions.pop(change["document_id"], None)
        elif document.status == Document.Status.READY and document.revision:
            revisions[document.id] = document.revision
    return revisions


def _ready(version: KnowledgeBaseVersion) -> bool:
    ids = [c["document_id"] for c in version.changes if c["action"] != "removed"]
    return not Document.objects.filter(id__in=ids, status__in=[Document.Status.PENDING,
                                                               Document.Status.PROCESSING]).exists()


def versions_advance(company_id: int, *, wait: bool = True) -> list[KnowledgeBaseVersion] | None:
    """Build every building version of the company whose documents are indexed (oldest first): check it
    against the golden questions and make it live or hold it. Versions created meanwhile are looked at too.

    Args:
        wait: wait for the company's version lock (held during another build and its golden check);
            False: return None at once if it is held.

    Returns:
        The versions built by this call (live or held); None when ``wait=False`` found the lock held.
    """
    built: list[KnowledgeBaseVersion] = []
    tried: set[int] = set()
    while True:
        pending = [v for v in KnowledgeBaseVersion.objects.filter(company_id=company_id, status=Status.BUILDING)
                   .order_by("number").values_list("id", flat=True) if v not in tried]
        if not pending:
            break
        for version_id in pending:
            tried.add(version_id)
            with transaction.atomic():
                if not _company_lock(company_id, wait=wait):
                    return None
                _build(company_id, version_id, built)
    if built:
        versions_cleanup(company_id)
    return built


def _build(company_id: int, version_id: int, built: list[KnowledgeBaseVersion]) -> None:
    """Build one version (under the company's version lock, in the caller's transaction)."""
    version = KnowledgeBaseVersion.objects.select_for_update().get(id=version_id)
    if version.status != Status.BUILDING or not _ready(version):
        return
    revisions = _candidate(company_id, version.changes)
    version.revisions = {str(d): r for d, r in revisions.items()}
    version.built_at = timezone.now()
    # Titles as indexed (an upload's title is its file name until extraction finds the document's own).
    titles = dict(Document.all_objects.filter(id__in=[c["document_id"] for c in version.changes])
                  .values_list("id", "title"))
    version.changes = [{**c, "title": titles.get(c["document_id"]) or c.get("title", "")} for c in version.changes]
    questions = list(GoldenQuestion.objects.filter(company_id=company_id))
    if questions:
        try:
            report = golden_check(company_id=company_id, revisions=revisions, apply=_apply, questions=questions)
        except Exception as exc:  # a provider outage must not make a version live unchecked
            logger.exception("golden check of version %s of company %s failed", version.number,
                             company_id)
            report = GoldenReport(results=[], passed=0, total=len(questions), ok=False,
                                  reason=f"The golden check could not run ({type(exc).__name__}: {exc}).")
        version.golden_results = report.results
        version.golden_passed, version.golden_total = report.passed, report.total
        if not report.ok:
            version.status = Status.HELD
            version.note = report.reason
            version.save()
            logger.info("knowledge base version %s of company %s held: %s", version.number, company_id,
                        report.reason)
            built.append(version)
            return
    version.save()
    _switch(version, revisions)
    built.append(version)


def versions_sweep(*, older_than_seconds: int = 300) -> int:
    """Build versions left building (periodic, with the documents sweep): for each company with a version
    building for more than ``older_than_seconds``, ``versions_advance`` if its lock is free.

    Returns:
        How many versions were built.
    """
    from datetime import timedelta

    before = timezone.now() - timedelta(seconds=older_than_seconds)
    companies = set(KnowledgeBaseVersion.objects.filter(status=Status.BUILDING, created_at__lt=before)
                    .values_list("company_id", flat=True))
    return sum(len(versions_advance(company_id, wait=False) or []) for company_id in companies)


# -- switching -----------------------------------------------------------------------------------------

def _apply(company_id: int, revisions: dict[int, int]) -> tuple[int, int]:
    """Make exactly ``revisions``' chunks live (in the caller's transaction). Returns (entered, left) chunks."""
    with connection.cursor() as cursor:
        # Only the documents whose live revision differs are touched (the company_document index).
        cursor.execute("SELECT document_id, array_agg(DISTINCT revision) FROM rag_chunk WHERE company_id = %s "
                       "AND live GROUP BY document_id", [company_id])
        current = {int(d): set(rs) for d, rs in cursor.fetchall()}
        touched = [d for d in set(current) | set(revisions) if current.get(d, set()) != (
            {revisions[d]} if d in revisions else set())]
        if not touched:
            return 0, 0
        wanted = [d for d in touched if d in revisions]
        cursor.execute(
            """
            UPDATE rag_chunk c SET live = (c.revision = t.r)
            FROM unnest(%s::bigint[], %s::int[]) t(d, r)
            WHERE c.company_id = %s AND c.document_id = t.d AND c.live <> (c.revision = t.r)
            RETURNING c.id, c.lexeme_count, c.live
            """, [wanted, [revisions[d] for d in wanted], company_id])
        rows = cursor.fetchall()
        gone = [d for d in touched if d not in revisions]
        if gone:
            cursor.execute("UPDATE rag_chunk SET live = false WHERE company_id = %s AND document_id = ANY(%s) "
                           "AND live RETURNING id, lexeme_count, live", [company_id, gone])
            rows += cursor.fetchall()
        entered = [r for r in rows if r[2]]
        left = [r for r in rows if not r[2]]
        if left:
            cursor.execute("UPDATE rag_chunkterm SET company_id = %s WHERE chunk_id = ANY(%s) AND company_id = %s",
                           [-company_id, [r[0] for r in left], company_id])
        if entered:
            cursor.execute("UPDATE rag_chunkterm SET company_id = %s WHERE chunk_id = ANY(%s) AND company_id = %s",
                           [company_id, [r[0] for r in entered], -company_id])
    delta_n = len(entered) - len(left)
    delta_len = sum(r[1] for r in entered) - sum(r[1] for r in left)
    if delta_n or delta_len:
        _corpus_stat_add(company_id, delta_n, delta_len)
    return len(entered), len(left)


def _switch(version: KnowledgeBaseVersion, revisions: dict[int, int]) -> None:
    """Make ``version`` live with ``revisions``: one transaction under the knowledge-base row's FOR UPDATE."""
    company_id = version.company_id
    with transaction.atomic():
        knowledge_base_get(company_id)
        kb = KnowledgeBase.objects.select_for_update().get(company_id=company_id)
        entered, left = _apply(company_id, revisions)
        now = timezone.now()
        KnowledgeBaseVersion.objects.filter(company_id=company_id, status=Status.LIVE).exclude(
            id=version.id).update(status=Status.RETIRED)
        version.status, version.live_at = Status.LIVE, now
        version.revisions = {str(d): r for d, r in revisions.items()}
        version.save()
        kb.live_version = version
        kb.save(update_fields=["live_version", "updated_at"])
    logger.info("knowledge base version %s of company %s live (%d chunks in, %d out)", version.number, company_id,
                entered, left)


def versions_cleanup(company_id: int, *, keep: int | None = None) -> int:
    """Delete chunks of revisions no version worth keeping references (module docstring, step 5), and
    deleted documents no such version holds (row, chunks, file).

    Args:
        keep: how many of the versions that were live are kept for rollback (default ``RAG_VERSIONS_KEPT``).

    Returns:
        How many chunks were deleted.
    """
    keep = settings.RAG_VERSIONS_KEPT if keep is None else keep
    kept = list(KnowledgeBaseVersion.objects.filter(company_id=company_id, status__in=[Status.HELD])
                .values_list("revisions", flat=True))
    # The last ``keep`` *distinct* states that were live: a version that changed nothing that answers (an
    # upload that failed, a re-index to the same chunks) does not push a real one out of the rollback window.
    states: list[dict] = []
    for revisions in (KnowledgeBaseVersion.objects.filter(company_id=company_id, status__in=[Status.LIVE, Status.RETIRED])
                      .exclude(live_at=None).order_by("-live_at").values_list("revisions", flat=True).iterator()):
        if revisions not in states:
            states.append(revisions)
            if len(states) >= max(keep, 1):
                break
    kept += states
    pairs = {(int(d), int(r)) for revisions in kept for d, r in (revisions or {}).items()}
    held = {d for d, _ in pairs}
    with transaction.atomic(), connection.cursor() as cursor:
        _company_lock(company_id)
        # A deleted document's newest revision goes too (nothing will make it live again but a rollback).
        cursor.execute(
            """
            DELETE FROM rag_chunk c USING rag_document d
            WHERE c.company_id = %s AND NOT c.live AND d.id = c.document_id
              AND (c.revision <> d.revision OR d.deleted_at IS NOT NULL)
              AND NOT EXISTS (SELECT 1 FROM unnest(%s::bigint[], %s::int[]) t(d, r)
                              WHERE t.d = c.document_id AND t.r = c.revision)
            """, [company_id, [p[0] for p in pairs], [p[1] for p in pairs]])
        deleted = cursor.rowcount
        gone = list(Document.all_objects.filter(company_id=company_id, deleted_at__isnull=False)
                    .exclude(id__in=held).exclude(chunks__live=True))
        for document in gone:
            storage, name = document.file.storage, document.file.name
            document.delete()
            if name:
                transaction.on_commit(lambda storage=storage, name=name: storage.delete(name))
        return deleted
