"""The dense leg of the retriever: the company's nearest chunks by cosine (pgvector), and how far the
best of them stands out of the company's embeddings (``dense_z``, a signal of the refusal gate).

A filtered HNSW scan can return fewer than k rows when the company holds a small share of all chunks
(pgvector docs, "Filtering"). Small companies (up to ``RAG_EXACT_SEARCH_MAX_CHUNKS``) are therefore
scanned exactly (index scans off, so the planner takes the company's rows and sorts them); large ones
use HNSW with ``hnsw.ef_search`` raised in proportion to the company's share, and fall back to the exact
scan if still short; a company whose share is too small for even the largest ef_search to yield k of its
rows goes to the exact scan at once (bench/retrieval_latency.py --tenants: at 370k chunks a 20k-chunk
company's HNSW scans came back short at ef 400-700).

A company with its own partial HNSW index (rag/company_hnsw.py: built once it holds
``RAG_COMPANY_HNSW_MIN_CHUNKS`` chunks) is searched through that index instead: its graph holds only the
company's rows, so ``RAG_COMPANY_HNSW_EF_SEARCH`` candidates are all the company's and recall no longer
falls with the company's share of all chunks (the global filtered index gave recall@50 0.82-0.91 at 370k
chunks, docs/benchmarks.md).
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from rag.company_hnsw import company_hnsw_index_name
from rag.vocabulary import company_cached, corpus_signature

_moments: OrderedDict = OrderedDict()  # per-company embedding moments (_embedding_moments)


def vector_literal(vector: list[float]) -> str:
    """A vector as pgvector's text input ``[x1,x2,...]`` (7 decimals), for ``%s::vector`` parameters."""
    return "[" + ",".join(f"{x:.7f}" for x in vector) + "]"


def company_share(company_id: int) -> tuple[int, int]:
    """(the company's chunks per ``rag_corpusstat``, all companies' chunks per the planner's estimate
    ``pg_class.reltuples``, never below the first): the share that decides between the exact and the HNSW scan."""
    company_chunks, total_chunks, _ = dense_facts(company_id)
    return company_chunks, total_chunks


def dense_facts(company_id: int) -> tuple[int, int, bool]:
    """:func:`company_share`'s two counts and whether the company's own partial HNSW index is valid (built
    and usable by the planner; rag/company_hnsw.py), in one round trip."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce((SELECT chunk_count FROM rag_corpusstat WHERE company_id = %s), 0), "
            "greatest((SELECT reltuples FROM pg_class WHERE oid = 'rag_chunk'::regclass), 0)::bigint, "
            "EXISTS (SELECT 1 FROM pg_index WHERE indexrelid = to_regclass(%s) AND indisvalid AND indisready)",
            [company_id, company_hnsw_index_name(company_id)],
        )
        company_chunks, total_chunks, own_index = cursor.fetchone()
    return int(company_chunks), max(int(total_chunks), int(company_chunks)), bool(own_index)


def dense_path(company_id: int, limit: int) -> str:
    """Which scan :func:`dense_search` takes for this company and pool size: ``"company_hnsw"`` (its own
    partial index), ``"hnsw"`` (the global index, filtered), or ``"exact"``."""
    company_chunks, total_chunks, own_index = dense_facts(company_id)
    return _path(company_chunks, total_chunks, own_index, limit)


def _path(company_chunks: int, total_chunks: int, own_index: bool, limit: int) -> str:
    if company_chunks <= settings.RAG_EXACT_SEARCH_MAX_CHUNKS:
        return "exact"
    if own_index:
        return "company_hnsw"
    share = company_chunks / max(total_chunks, 1)
    # A filtered HNSW scan visits about ef_search candidates of all companies, of which about share * ef
    # are this company's: when even the largest ef cannot yield ``limit`` of them, the scan would come
    # back short and the exact scan would run after it anyway -- go there at once.
    return "hnsw" if share * settings.RAG_HNSW_EF_SEARCH_MAX >= limit else "exact"


def dense_search(*, company_id: int, vector: list[float], limit: int) -> list[tuple[int, float]]:
    """The company's ``limit`` nearest live chunks by cosine distance (pgvector ``<=>``).

    Path (:func:`dense_path`): the exact scan up to ``RAG_EXACT_SEARCH_MAX_CHUNKS`` chunks; the company's own
    partial HNSW index when it has a valid one (``hnsw.ef_search`` = max(``RAG_COMPANY_HNSW_EF_SEARCH``,
    ``limit``), at most ``RAG_HNSW_EF_SEARCH_MAX``); otherwise the global HNSW index filtered by company.
    An index scan that comes back short (non-live rows take candidates too) is followed by the exact scan.

    Returns:
        [(chunk_id, cosine similarity)], best first; fewer than ``limit`` only if the
        company has fewer chunks.
    """
    literal = vector_literal(vector)
    company_chunks, total_chunks, own_index = dense_facts(company_id)
    if company_chunks == 0:
        return []
    path = _path(company_chunks, total_chunks, own_index, limit)
    # company_id is an int literal in the SQL, not a bound parameter: a partial index is only usable when
    # the planner can prove its predicate (company_id = N) from the query's, which takes a constant. Django's
    # psycopg 3 backend binds client-side by default (so %s would arrive as a literal too), but a generic plan
    # of a server-side prepared statement would not match; int() keeps it injection-safe.
    sql = (f"SELECT id, 1 - (embedding <=> %s::vector) FROM rag_chunk WHERE company_id = {int(company_id)} AND live "
           "ORDER BY embedding <=> %s::vector LIMIT %s")
    params = [literal, literal, limit]
    with transaction.atomic(), connection.cursor() as cursor:
        if path != "exact":
            if path == "company_hnsw":
                ef = max(settings.RAG_COMPANY_HNSW_EF_SEARCH, limit)
            else:
                share = company_chunks / max(total_chunks, 1)
                ef = max(limit * 4, math.ceil(limit * 2 / max(share, 1e-6)), 100)
            cursor.execute(f"SET LOCAL hnsw.ef_search = {int(min(settings.RAG_HNSW_EF_SEARCH_MAX, ef))}")
            cursor.execute(sql, params)
            rows = cursor.fetchall()
            if len(rows) >= min(limit, company_chunks):
                return [(r[0], float(r[1])) for r in rows]
        # Exact scan: no index scan, so the HNSW index cannot cut the company's rows short.
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(sql, params)
        return [(r[0], float(r[1])) for r in cursor.fetchall()]


def _as_array(value) -> np.ndarray:
    if isinstance(value, str):
        return np.fromstring(value.strip("[]"), sep=",", dtype=np.float64)
    return np.asarray(value, dtype=np.float64)


def dense_z(company_id: int, vector: list[float], best: float,
            signature: tuple[int, int] | None = None) -> float | None:
    """(best cosine - mean cosine) / std of cosines over the company's chunks, for this query.

    A query-performance predictor: a question the corpus really covers has a chunk that stands far out
    of the crowd. Mean and variance come from the company's embedding centroid and covariance
    (:func:`_embedding_moments`), so no scan per query. ``vector``: the question's embedding; ``best``: the
    best cosine similarity found; ``signature``: the corpus signature (and model) keying the cache. None
    under 2 chunks or with no spread.
    """
    moments = _embedding_moments(company_id, signature)
    if moments is None:
        return None
    mean, covariance = moments
    q = np.asarray(vector, dtype=np.float64)
    variance = float(q @ covariance @ q)
    if variance <= 1e-12:
        return None
    return (best - float(q @ mean)) / math.sqrt(variance)


def _embedding_moments(company_id: int,
                       signature: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and covariance of the company's chunk embeddings (from at most ``RAG_MOMENTS_SAMPLE`` chunks,
    a random sample), cached per process like the vocabulary; None under 2 chunks."""
    signature = signature or corpus_signature(company_id)

    def load() -> tuple[np.ndarray, np.ndarray] | None:
        sample = settings.RAG_MOMENTS_SAMPLE
        with connection.cursor() as cursor:
            rows = []
            if signature[0] > sample:
                percent = min(100.0, 100.0 * 2 * sample / signature[0])
                cursor.execute(f"SELECT embedding FROM rag_chunk TABLESAMPLE SYSTEM ({percent:.4f}) "
                               "WHERE company_id = %s AND live LIMIT %s", [company_id, sample])
                rows = cursor.fetchall()
            if len(rows) < min(signature[0], sample) // 4:  # small company, or its rows are clustered
                cursor.execute("SELECT embedding FROM rag_chunk WHERE company_id = %s AND live ORDER BY random() LIMIT %s",
                               [company_id, sample])
                rows = cursor.fetchall()
        if len(rows) < 2:
            return None
        matrix = np.asarray([_as_array(r[0]) for r in rows])
        return matrix.mean(axis=0), np.cov(matrix, rowvar=False, bias=True)

    return company_cached(_moments, company_id, signature, load)
