"""The retriever: hybrid dense (pgvector) + lexical (BM25 over Postgres full-text) search.

Always scoped to one company. Measured on SciFact (RETRIEVAL-NOTES.md):
``ts_rank`` over an all-terms query scores nDCG@10 0.07 and drags a fusion
below dense alone; BM25 (idf, length saturation, any-term match) fused with
dense reaches about 0.72-0.73. So the lexical leg here is BM25 computed in SQL
from postings (``rag_chunkterm``: per-company term, term frequency, chunk
length) that Postgres' own tokeniser and stemmer produced, with N and avgdl per
company (``rag_corpusstat``).

Dense leg: a filtered HNSW scan can return fewer than k rows when the company
holds a small share of all chunks (pgvector docs, "Filtering"). Small
companies (up to ``RAG_EXACT_SEARCH_MAX_CHUNKS``) are therefore scanned exactly
(index scans off, so the planner takes the company's rows and sorts them);
large ones use HNSW with ``hnsw.ef_search`` raised in proportion to the
company's share, and fall back to the exact scan if still short.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction

from tenants.models import Company


@dataclass
class RetrievedChunk:
    """One retrieved chunk. ``score`` is the fused score in [0, 1] (higher is better);
    ``dense_similarity`` is cosine similarity in [-1, 1]; ``bm25`` is the raw BM25 score (0 if no term matched)."""

    chunk_id: int
    document_id: int
    document_title: str
    file_name: str
    section: str
    page: int | None
    text: str
    score: float
    dense_similarity: float
    bm25: float
    matched_terms: int = 0
    extra: dict = field(default_factory=dict)


def _vector_literal(vector: list[float]) -> str:
    return "[" + ",".join(f"{x:.7f}" for x in vector) + "]"


def query_terms(query: str) -> list[str]:
    """The query's lexemes under ``RAG_TEXT_SEARCH_CONFIG`` (stemmed, stop words removed), distinct."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT lexeme FROM unnest(to_tsvector(%s::regconfig, %s))",
                       [settings.RAG_TEXT_SEARCH_CONFIG, query])
        return [row[0] for row in cursor.fetchall()]


def lexical_search(*, company_id: int, terms: list[str], limit: int) -> list[tuple[int, float, int]]:
    """BM25 top ``limit`` chunks of the company matching any of ``terms``.

    BM25 with Lucene's idf ln(1 + (N - df + 0.5) / (df + 0.5)), k1 = ``RAG_BM25_K1`` (1.2),
    b = ``RAG_BM25_B`` (0.75) (Robertson & Zaragoza 2009; the defaults of Lucene and bm25s).

    Returns:
        [(chunk_id, bm25 score, number of query terms matched)], best first.
    """
    if not terms:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH stat AS (
                SELECT greatest(chunk_count, 1)::float8 AS n,
                       greatest(total_length::float8 / greatest(chunk_count, 1), 1) AS avgdl
                FROM rag_corpusstat WHERE company_id = %(company)s
            ), postings AS (
                SELECT chunk_id, tf, dl, count(*) OVER (PARTITION BY term) AS df
                FROM rag_chunkterm WHERE company_id = %(company)s AND term = ANY(%(terms)s)
            )
            SELECT p.chunk_id,
                   sum(ln(1 + (s.n - p.df + 0.5) / (p.df + 0.5))
                       * p.tf * (%(k1)s + 1) / (p.tf + %(k1)s * (1 - %(b)s + %(b)s * p.dl / s.avgdl))) AS score,
                   count(*) AS matched
            FROM postings p CROSS JOIN stat s
            GROUP BY p.chunk_id
            ORDER BY score DESC
            LIMIT %(limit)s
            """,
            {"company": company_id, "terms": terms, "k1": settings.RAG_BM25_K1, "b": settings.RAG_BM25_B,
             "limit": limit},
        )
        return [(row[0], float(row[1]), int(row[2])) for row in cursor.fetchall()]


def _company_share(company_id: int) -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce((SELECT chunk_count FROM rag_corpusstat WHERE company_id = %s), 0), "
            "greatest((SELECT reltuples FROM pg_class WHERE oid = 'rag_chunk'::regclass), 0)::bigint",
            [company_id],
        )
        company_chunks, total_chunks = cursor.fetchone()
    return int(company_chunks), max(int(total_chunks), int(company_chunks))


def dense_search(*, company_id: int, vector: list[float], limit: int) -> list[tuple[int, float]]:
    """The company's ``limit`` nearest chunks by cosine distance (pgvector ``<=>``).

    Returns:
        [(chunk_id, cosine similarity)], best first; fewer than ``limit`` only if the
        company has fewer chunks.
    """
    literal = _vector_literal(vector)
    company_chunks, total_chunks = _company_share(company_id)
    if company_chunks == 0:
        return []
    sql = ("SELECT id, 1 - (embedding <=> %s::vector) FROM rag_chunk WHERE company_id = %s "
           "ORDER BY embedding <=> %s::vector LIMIT %s")
    params = [literal, company_id, literal, limit]
    with transaction.atomic(), connection.cursor() as cursor:
        if company_chunks > settings.RAG_EXACT_SEARCH_MAX_CHUNKS:
            share = company_chunks / max(total_chunks, 1)
            ef = min(settings.RAG_HNSW_EF_SEARCH_MAX, max(limit * 4, math.ceil(limit * 2 / max(share, 1e-6)), 100))
            cursor.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
            cursor.execute(sql, params)
            rows = cursor.fetchall()
            if len(rows) >= min(limit, company_chunks):
                return [(r[0], float(r[1])) for r in rows]
        # Exact scan: no index scan, so the HNSW index cannot cut the company's rows short.
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(sql, params)
        return [(r[0], float(r[1])) for r in cursor.fetchall()]


def _minmax(values: dict[int, float], keys: set[int], missing: float | None = None) -> dict[int, float]:
    present = [values[k] for k in keys if k in values]
    if not present:
        return {k: 0.0 for k in keys}
    low = min(present) if missing is None else min(min(present), missing)
    high = max(present)
    span = high - low
    return {k: ((values.get(k, low if missing is None else missing) - low) / span if span > 0 else 1.0)
            for k in keys}


def chunk_search(*, company: Company, query: str, k: int = 5, query_vector: list[float] | None = None,
                 candidates: int | None = None) -> list[RetrievedChunk]:
    """The company's best ``k`` chunks for ``query``, fused from the BM25 and dense legs.

    Args:
        query: the question as the user typed it.
        k: how many chunks to return.
        query_vector: the query's embedding if already computed (else embedded here).
        candidates: pool size per leg (default ``RAG_CANDIDATES``, at least ``k``).

    Fusion (``RAG_FUSION``): "blend" = w * minmax(BM25) + (1 - w) * minmax(cosine) over the pooled
    candidates, w = ``RAG_FUSION_LEXICAL_WEIGHT`` (0.5: 0.732 nDCG@10 on SciFact in
    RETRIEVAL-NOTES.md); "rrf" = sum of 1 / (``RAG_RRF_K`` + rank) (k = 10: 0.726).
    """
    from rag.embeddings import embed_query

    pool = max(k, candidates or settings.RAG_CANDIDATES)
    vector = query_vector if query_vector is not None else embed_query(query)
    lexical = lexical_search(company_id=company.id, terms=query_terms(query), limit=pool)
    dense = dense_search(company_id=company.id, vector=vector, limit=pool)
    ids = {cid for cid, _, _ in lexical} | {cid for cid, _ in dense}
    if not ids:
        return []
    bm25 = {cid: score for cid, score, _ in lexical}
    matched = {cid: m for cid, _, m in lexical}
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.id, c.document_id, d.title, d.file_name, c.section, c.page, c.text,
                   1 - (c.embedding <=> %s::vector)
            FROM rag_chunk c JOIN rag_document d ON d.id = c.document_id
            WHERE c.id = ANY(%s) AND c.company_id = %s
            """,
            [_vector_literal(vector), list(ids), company.id],
        )
        rows = {row[0]: row for row in cursor.fetchall()}
    cosine = {cid: float(row[7]) for cid, row in rows.items()}
    keys = set(rows)
    if settings.RAG_FUSION == "rrf":
        rank_l = {cid: i for i, (cid, _, _) in enumerate(lexical, start=1)}
        rank_d = {cid: i for i, (cid, _) in enumerate(sorted(cosine.items(), key=lambda kv: -kv[1]), start=1)}
        rrf_k = settings.RAG_RRF_K
        raw = {cid: (1 / (rrf_k + rank_l[cid]) if cid in rank_l else 0) + 1 / (rrf_k + rank_d[cid]) for cid in keys}
        top = max(raw.values()) or 1.0
        fused = {cid: value / top for cid, value in raw.items()}
    else:
        w = settings.RAG_FUSION_LEXICAL_WEIGHT
        lex_n = _minmax(bm25, keys, missing=0.0)
        den_n = _minmax(cosine, keys)
        fused = {cid: w * lex_n[cid] + (1 - w) * den_n[cid] for cid in keys}
    ranked = sorted(keys, key=lambda cid: (-fused[cid], cid))[:k]
    return [
        RetrievedChunk(chunk_id=cid, document_id=rows[cid][1], document_title=rows[cid][2],
                       file_name=rows[cid][3], section=rows[cid][4], page=rows[cid][5], text=rows[cid][6],
                       score=round(fused[cid], 6), dense_similarity=round(cosine[cid], 6),
                       bm25=round(bm25.get(cid, 0.0), 6), matched_terms=matched.get(cid, 0))
        for cid in ranked
    ]
