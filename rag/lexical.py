"""The lexical leg of the retriever: a question's lexemes and BM25 over the company's postings.

BM25 computed in SQL from postings (``rag_chunkterm``: per-company term, term frequency, chunk length)
that Postgres' own tokeniser and stemmer produced (``RAG_TEXT_SEARCH_CONFIG``, the same at index and
query time), with N and avgdl per company (``rag_corpusstat``). A question matches on any of its
terms. ``ts_rank`` is not used: it has no idf and no length saturation, and fused with dense retrieval
it pulls SciFact nDCG@10 below dense alone (RETRIEVAL-NOTES.md). Document frequencies and typo
corrections come from the company's vocabulary (rag/vocabulary.py); the fusion is in rag/retrieval.py.
"""
from __future__ import annotations

from django.conf import settings
from django.db import connection

from rag.vocabulary import company_vocabulary


def query_terms(query: str) -> list[str]:
    """The query's lexemes under ``RAG_TEXT_SEARCH_CONFIG`` (stemmed, stop words removed), distinct."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT lexeme FROM unnest(to_tsvector(%s::regconfig, %s))",
                       [settings.RAG_TEXT_SEARCH_CONFIG, query])
        return [row[0] for row in cursor.fetchall()]


def lexical_search(*, company_id: int, terms: list[str], limit: int, weights: dict[str, float] | None = None,
                   signature: tuple[int, int] | None = None) -> list[tuple[int, float, int]]:
    """BM25 top ``limit`` chunks of the company matching any of ``terms``.

    BM25 with Lucene's idf ln(1 + (N - df + 0.5) / (df + 0.5)), k1 = ``RAG_BM25_K1`` (1.2),
    b = ``RAG_BM25_B`` (0.75) (Robertson & Zaragoza 2009; the defaults of Lucene and bm25s).
    ``weights`` scales a term's contribution (typo corrections weigh less than 1; default 1).
    ``signature``: the company's corpus signature if the caller already read it (saves a query).

    Work is bounded: per query term at most ``RAG_BM25_POSTINGS_PER_TERM`` postings are scored,
    those with the highest tf / length (an index-ordered scan, ``chunkterm_company_term_impact``).
    Exact while a term occurs in at most that many chunks; beyond it, the chunks where a common
    (low-idf) term weighs least lose that term's small share. bench/retrieval_latency.py measured the
    unbounded form at p95 188 ms for this leg at 100k chunks.

    Returns:
        [(chunk_id, bm25 score, number of query terms matched)], best first.
    """
    if not terms:
        return []
    weights = weights or {}
    # Document frequencies come from the company's cached vocabulary (one GROUP BY per corpus
    # change), so the query reads no posting just to count it. A term the company does not have
    # matches nothing and is dropped.
    vocabulary = company_vocabulary(company_id, signature)
    known = [t for t in dict.fromkeys(terms) if vocabulary.df_by_term.get(t)]
    if not known:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH stat AS (
                SELECT greatest(chunk_count, 1)::float8 AS n,
                       greatest(total_length::float8 / greatest(chunk_count, 1), 1) AS avgdl
                FROM rag_corpusstat WHERE company_id = %(company)s
            ), q AS (
                SELECT * FROM unnest(%(terms)s::text[], %(weights)s::float8[], %(dfs)s::int8[]) AS q(term, w, df)
            ), postings AS (
                SELECT p.chunk_id, p.tf, p.dl, q.w, q.df
                FROM q CROSS JOIN LATERAL (
                    SELECT chunk_id, tf, dl FROM rag_chunkterm p
                    WHERE p.company_id = %(company)s AND p.term = q.term
                    ORDER BY (p.tf::float4 / greatest(p.dl, 1)) DESC
                    LIMIT %(per_term)s
                ) p
            )
            SELECT p.chunk_id,
                   sum(p.w * ln(1 + (s.n - p.df + 0.5) / (p.df + 0.5))
                       * p.tf * (%(k1)s + 1) / (p.tf + %(k1)s * (1 - %(b)s + %(b)s * p.dl / s.avgdl))) AS score,
                   count(*) AS matched
            FROM postings p CROSS JOIN stat s
            GROUP BY p.chunk_id
            ORDER BY score DESC, p.chunk_id
            LIMIT %(limit)s
            """,
            {"company": company_id, "terms": known, "weights": [float(weights.get(t, 1.0)) for t in known],
             "dfs": [int(vocabulary.df_by_term[t]) for t in known], "per_term": settings.RAG_BM25_POSTINGS_PER_TERM,
             "k1": settings.RAG_BM25_K1, "b": settings.RAG_BM25_B, "limit": limit},
        )
        return [(row[0], float(row[1]), int(row[2])) for row in cursor.fetchall()]
