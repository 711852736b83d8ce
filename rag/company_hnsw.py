"""Per-company partial HNSW indexes on rag_chunk: which companies get one, building and dropping them.

Why: one global HNSW index filtered by ``company_id`` loses recall as the company's share of all chunks
falls, because the graph search visits at most ``hnsw.ef_search`` candidates of every company and the
filter keeps only this company's. Measured at 370k chunks (docs/benchmarks.md, "Retrieval latency at 1M
chunks, many companies"): dense recall@50 against the exact scan 0.82 / 0.88 / 0.91 for companies of
100k / 50k / 20k chunks, and pgvector 0.6.2 caps ef_search at 1000 and has no iterative index scans. A
partial index ``... USING hnsw (embedding vector_cosine_ops) WHERE company_id = N`` holds only that
company's rows, so its graph search needs no company filter (rag/dense.py uses it when it is valid).

Lifecycle (docs/retrieval.md, "Per-company HNSW indexes"):

- named ``rag_chunk_hnsw_c<company id>`` (:func:`company_hnsw_index_name`), built with the global
  index's m / ef_construction (the model's ``chunk_embedding_hnsw``);
- created with ``CREATE INDEX CONCURRENTLY`` (ingestion and searches go on meanwhile; the planner ignores
  the index until the build has finished and marked it valid) once the company's live chunks
  (``rag_corpusstat.chunk_count``) reach ``RAG_COMPANY_HNSW_MIN_CHUNKS``;
- dropped with ``DROP INDEX CONCURRENTLY`` when the company no longer exists or its chunks fall below
  ``RAG_COMPANY_HNSW_MIN_CHUNKS * DROP_FRACTION`` (hysteresis: a company hovering at the threshold is
  not rebuilt over and over);
- an invalid index (a build that was interrupted: killed worker, time limit, server restart) is dropped
  and built again.

:func:`company_hnsw_indexes_reconcile` does all of it; the beat task ``rag.company_hnsw_indexes_reconcile``
and ``manage.py hnsw_indexes`` call it. A deleted company's index is dropped soon after the delete commits
(rag.apps: post_delete of Company queues ``rag.company_hnsw_index_drop``).

Every function here runs DDL that PostgreSQL refuses inside a transaction block (CONCURRENTLY), so the
caller must be in autocommit (not inside ``transaction.atomic``): :class:`IndexBuildInTransaction` otherwise.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from saas_bot.errors import ServiceError

logger = logging.getLogger(__name__)

INDEX_PREFIX = "rag_chunk_hnsw_c"
_INDEX_NAME = re.compile(rf"^{INDEX_PREFIX}(\d+)$")
# An index is dropped below this fraction of RAG_COMPANY_HNSW_MIN_CHUNKS (hysteresis, see the module docstring).
DROP_FRACTION = 0.5
# pg_try_advisory_lock key of the reconcile (two beats, or a beat and an operator's command, never race to
# build the same index): "rag hnsw" in ASCII.
_RECONCILE_LOCK = 0x7261672068_6E73


class IndexBuildInTransaction(ServiceError):
    def __init__(self) -> None:
        super().__init__(code="index_build_in_transaction",
                         message="Per-company HNSW indexes are built and dropped CONCURRENTLY, which cannot run "
                                 "inside a transaction; call this in autocommit.")


@dataclass
class ReconcileResult:
    """What :func:`company_hnsw_indexes_reconcile` did: company ids whose index was created (with build
    seconds), dropped, or kept; ``skipped`` when another reconcile held the lock."""

    created: dict[int, float] = field(default_factory=dict)
    dropped: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    skipped: bool = False


def company_hnsw_index_name(company_id: int) -> str:
    """``rag_chunk_hnsw_c<company_id>``: deterministic, so code and operators find a company's index by name."""
    return f"{INDEX_PREFIX}{int(company_id)}"


def company_hnsw_indexes() -> dict[int, bool]:
    """{company id: valid} of the per-company HNSW indexes that exist on rag_chunk (valid: built and usable
    by the planner; False while a concurrent build runs or after one was interrupted)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, i.indisvalid AND i.indisready FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 'rag_chunk'::regclass AND c.relname LIKE %s",
            [INDEX_PREFIX.replace("_", r"\_") + "%"],
        )
        rows = cursor.fetchall()
    found = {}
    for name, valid in rows:
        match = _INDEX_NAME.match(name)
        if match:
            found[int(match.group(1))] = bool(valid)
    return found


def _hnsw_parameters() -> tuple[int, int]:
    """(m, ef_construction) of the global index as the model declares it (rag.models.Chunk, migration 0001)."""
    from rag.models import Chunk

    index = next(i for i in Chunk._meta.indexes if i.name == "chunk_embedding_hnsw")
    return int(index.m), int(index.ef_construction)


def _require_autocommit() -> None:
    if connection.in_atomic_block:
        raise IndexBuildInTransaction()


def company_hnsw_index_create(*, company_id: int) -> float:
    """Build the company's partial HNSW index concurrently (nothing if a valid one exists); returns seconds.

    An invalid leftover of an interrupted build is dropped first. Memory for the build: ``maintenance_work_mem``
    = ``RAG_COMPANY_HNSW_BUILD_MEMORY`` for this session (pgvector builds far slower once the graph no longer
    fits in it: about 2 KB per 384-dimension row at m=16). ``statement_timeout`` is lifted for the build.

    Raises:
        IndexBuildInTransaction: called inside ``transaction.atomic``.
        django.db.DatabaseError: the build failed (the invalid index is left for the next call to replace).
    """
    _require_autocommit()
    name = company_hnsw_index_name(company_id)
    state = company_hnsw_indexes().get(int(company_id))
    if state is True:
        return 0.0
    if state is False:
        company_hnsw_index_drop(company_id=company_id)
    m, ef_construction = _hnsw_parameters()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = %s", [settings.RAG_COMPANY_HNSW_BUILD_MEMORY])
        cursor.execute("SET statement_timeout = 0")
        try:
            # company_id is an int literal, not a parameter: an index predicate cannot take one.
            cursor.execute(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON rag_chunk USING hnsw (embedding vector_cosine_ops) "
                f"WITH (m = {m}, ef_construction = {ef_construction}) WHERE company_id = {int(company_id)}"
            )
        finally:
            cursor.execute("RESET maintenance_work_mem")
            cursor.execute("RESET statement_timeout")
    seconds = time.perf_counter() - started
    logger.info("built %s in %.1f s", name, seconds)
    return seconds


def company_hnsw_index_drop(*, company_id: int) -> bool:
    """Drop the company's partial HNSW index concurrently if it exists; True if one was dropped.

    Raises:
        IndexBuildInTransaction: called inside ``transaction.atomic``.
    """
    _require_autocommit()
    name = company_hnsw_index_name(company_id)
    existed = int(company_id) in company_hnsw_indexes()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    if existed:
        logger.info("dropped %s", name)
    return existed


def company_hnsw_indexes_reconcile(*, min_chunks: int | None = None, dry_run: bool = False) -> ReconcileResult:
    """Make the per-company HNSW indexes match the companies' sizes (see the module docstring for the rule).

    Args:
        min_chunks: live chunks from which a company gets an index (default ``RAG_COMPANY_HNSW_MIN_CHUNKS``;
            0 or less: no company gets one, and every existing one is dropped).
        dry_run: report what would be created and dropped, change nothing.

    Builds run one after the other, largest company first; a build of a 100k-chunk company takes minutes
    on 2 cores (docs/benchmarks.md). Only one reconcile runs at a time (a session advisory lock); a second
    returns ``skipped``.

    Raises:
        IndexBuildInTransaction: called inside ``transaction.atomic``.
    """
    _require_autocommit()
    threshold = settings.RAG_COMPANY_HNSW_MIN_CHUNKS if min_chunks is None else int(min_chunks)
    result = ReconcileResult()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [_RECONCILE_LOCK])
        if not cursor.fetchone()[0]:
            result.skipped = True
            return result
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT s.company_id, s.chunk_count FROM rag_corpusstat s "
                           "JOIN tenants_company c ON c.id = s.company_id")
            sizes = dict(cursor.fetchall())
        existing = company_hnsw_indexes()
        for company_id, valid in sorted(existing.items()):
            chunks = sizes.get(company_id, 0)
            # An invalid leftover is still written to on every insert: drop it unless it is about to be rebuilt.
            if threshold <= 0 or chunks < threshold * DROP_FRACTION or (not valid and chunks < threshold):
                if not dry_run:
                    company_hnsw_index_drop(company_id=company_id)
                result.dropped.append(company_id)
            elif valid:
                result.kept.append(company_id)
        wanted = sorted((cid for cid, chunks in sizes.items() if threshold > 0 and chunks >= threshold
                         and existing.get(cid) is not True), key=lambda cid: -sizes[cid])
        for company_id in wanted:
            result.created[company_id] = 0.0 if dry_run else round(company_hnsw_index_create(company_id=company_id), 1)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [_RECONCILE_LOCK])
    return result
