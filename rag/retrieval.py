"""The retriever: hybrid dense (pgvector) + lexical (BM25 over Postgres full-text) search.

Always scoped to one company. docs/retrieval.md has the design and the measurements.

Lexical leg: BM25 computed in SQL from postings (``rag_chunkterm``: per-company
term, term frequency, chunk length) that Postgres' own tokeniser and stemmer
produced (``RAG_TEXT_SEARCH_CONFIG``, the same at index and query time), with N
and avgdl per company (``rag_corpusstat``). A question matches on any of its
terms. ``ts_rank`` is not used: it has no idf and no length saturation, and
fused with dense retrieval it pulls SciFact nDCG@10 below dense alone
(RETRIEVAL-NOTES.md).

Typo tolerance: rag/vocabulary.py (the company's vocabulary and the corrections).

Dense leg: a filtered HNSW scan can return fewer than k rows when the company
holds a small share of all chunks (pgvector docs, "Filtering"). Small
companies (up to ``RAG_EXACT_SEARCH_MAX_CHUNKS``) are therefore scanned exactly
(index scans off, so the planner takes the company's rows and sorts them);
large ones use HNSW with ``hnsw.ef_search`` raised in proportion to the
company's share, and fall back to the exact scan if still short; a company whose
share is too small for even the largest ef_search to yield k of its rows goes to
the exact scan at once (bench/retrieval_latency.py --tenants: at 370k chunks a
20k-chunk company's HNSW scans came back short at ef 400-700).

Fusion: min-max score blend (default) or reciprocal rank fusion, over the union
of both legs' candidates. Each result also carries, in ``extra``, the signals
the refusal gate (rag/relevance.py) reads.
"""
from __future__ import annotations

import math
import re
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from rag.vocabulary import company_cached, company_vocabulary, corpus_signature, correct_terms, query_words
from tenants.models import Company


@dataclass
class RetrievedChunk:
    """One retrieved chunk. ``score`` is the fused score in [0, 1] (higher is better);
    ``dense_similarity`` is cosine similarity in [-1, 1]; ``bm25`` is the raw BM25 score (0 if no term matched).

    ``extra`` holds query-level signals (the same dict object on every result of one search):
    ``best_cosine`` (the company's closest chunk to the question), ``dense_z`` (how far it stands above
    the company's cosine distribution for this question, in standard deviations), ``corpus_chunks``
    (the company's N) -- the refusal gate reads these three --, and for diagnosis ``legs_agree`` (both
    legs' best documents coincide), ``query_terms``, ``unknown_terms`` (lexemes the corpus lacks and no
    correction found), ``corrected_terms`` ({typed lexeme: corpus lexeme}) and ``corrected_query``
    (the question as re-embedded, or None).
    """

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


def vector_literal(vector: list[float]) -> str:
    """A vector as pgvector's text input ``[x1,x2,...]`` (7 decimals), for ``%s::vector`` parameters."""
    return "[" + ",".join(f"{x:.7f}" for x in vector) + "]"


def query_terms(query: str) -> list[str]:
    """The query's lexemes under ``RAG_TEXT_SEARCH_CONFIG`` (stemmed, stop words removed), distinct."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT lexeme FROM unnest(to_tsvector(%s::regconfig, %s))",
                       [settings.RAG_TEXT_SEARCH_CONFIG, query])
        return [row[0] for row in cursor.fetchall()]


_moments: OrderedDict = OrderedDict()  # per-company embedding moments (_embedding_moments)


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
    literal = vector_literal(vector)
    company_chunks, total_chunks = _company_share(company_id)
    if company_chunks == 0:
        return []
    sql = ("SELECT id, 1 - (embedding <=> %s::vector) FROM rag_chunk WHERE company_id = %s AND live "
           "ORDER BY embedding <=> %s::vector LIMIT %s")
    params = [literal, company_id, literal, limit]
    share = company_chunks / max(total_chunks, 1)
    # A filtered HNSW scan visits about ef_search candidates of all companies, of which about share * ef
    # are this company's: when even the largest ef cannot yield ``limit`` of them, the scan would come
    # back short and the exact scan would run after it anyway -- go there at once.
    hnsw_can_fill = share * settings.RAG_HNSW_EF_SEARCH_MAX >= limit
    with transaction.atomic(), connection.cursor() as cursor:
        if company_chunks > settings.RAG_EXACT_SEARCH_MAX_CHUNKS and hnsw_can_fill:
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


def _as_array(value) -> np.ndarray:
    if isinstance(value, str):
        return np.fromstring(value.strip("[]"), sep=",", dtype=np.float64)
    return np.asarray(value, dtype=np.float64)


def _dense_z(company_id: int, vector: list[float], best: float,
             signature: tuple[int, int] | None = None) -> float | None:
    """(best cosine - mean cosine) / std of cosines over the company's chunks, for this query.

    A query-performance predictor: a question the corpus really covers has a chunk that stands far out
    of the crowd. Mean and variance come from the company's embedding centroid and covariance
    (:func:`_embedding_moments`), so no scan per query.
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


def _surface_forms(*, chunk_ids: list[int], terms: list[str]) -> dict[str, str]:
    """For each corrected lexeme, the commonest word starting with it in the given chunks' text
    ("messag" -> "messages"), so the corrected question can be embedded with real words."""
    if not chunk_ids or not terms:
        return {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT text FROM rag_chunk WHERE id = ANY(%s)", [chunk_ids])
        texts = [row[0] for row in cursor.fetchall()]
    forms: dict[str, str] = {}
    for term in terms:
        stem = term[:-1] if term.endswith("i") and len(term) > 3 else term  # Snowball's y -> i
        pattern = re.compile(r"\b(" + re.escape(stem) + r"[a-z]*)", re.IGNORECASE)
        counts = Counter(m.group(1).lower() for text in texts for m in pattern.finditer(text))
        if counts:
            forms[term] = min(counts, key=lambda word: (-counts[word], len(word), word))
    return forms


def corrected_question(query: str, replacements: dict[str, str]) -> str:
    """``query`` with each misspelt word (as typed) replaced by its correction."""
    for typed, word in replacements.items():
        query = re.sub(r"(?<!\w)" + re.escape(typed) + r"(?!\w)", word, query, flags=re.IGNORECASE)
    return query


def chunk_search(*, company: Company, query: str, k: int = 5, query_vector: list[float] | None = None,
                 candidates: int | None = None, document_ids: list[int] | None = None,
                 cross_lingual: bool = False) -> list[RetrievedChunk]:
    """The company's best ``k`` chunks for ``query``, fused from the BM25 and dense legs.

    Args:
        query: the question as the user typed it.
        k: how many chunks to return.
        query_vector: the query's embedding if already computed (else embedded here).
        candidates: pool size per leg (default ``RAG_CANDIDATES``, at least ``k``).
        document_ids: only these documents (a bot limited to some collections); None = all. The legs
            search the whole company with a pool ``RAG_SCOPED_POOL_FACTOR`` times larger and the
            candidates outside the scope are dropped before fusion.
        cross_lingual: the question is in another language than the documents (rag/language.py): its
            words are not "corrected" into the documents' vocabulary, and the lexical leg weighs
            ``RAG_CROSS_LINGUAL_LEXICAL_WEIGHT`` instead of ``RAG_FUSION_LEXICAL_WEIGHT`` (the dense
            leg of a multilingual model carries the match).

    Fusion (``RAG_FUSION``): "blend" = w * (BM25 / max BM25) + (1 - w) * minmax(cosine) over the pooled
    candidates, w = ``RAG_FUSION_LEXICAL_WEIGHT``; "rrf" = sum of 1 / (``RAG_RRF_K`` + rank). Then a
    chunk whose section heading holds a share s of the question's terms gets
    (fused + ``RAG_SECTION_BOOST`` * s) / (1 + ``RAG_SECTION_BOOST``).
    docs/retrieval.md has the figures behind the defaults.
    """
    with transaction.atomic():
        # The company's embedding model is read under FOR SHARE and kept until the search is done, so a
        # model switch (rag/knowledge_base.py) cannot change over between embedding and searching.
        return _chunk_search(company=company, query=query, k=k, query_vector=query_vector, candidates=candidates,
                             document_ids=document_ids, cross_lingual=cross_lingual)


def _chunk_search(*, company: Company, query: str, k: int, query_vector: list[float] | None,
                  candidates: int | None, document_ids: list[int] | None,
                  cross_lingual: bool) -> list[RetrievedChunk]:
    from rag.embeddings import embed_query
    from rag.knowledge_base import knowledge_base_model

    model = knowledge_base_model(company.id, lock=True)
    pool = max(k, candidates or settings.RAG_CANDIDATES)
    if document_ids is not None:
        if not document_ids:
            return []
        pool *= settings.RAG_SCOPED_POOL_FACTOR
    vector = query_vector if query_vector is not None else embed_query(query, model)
    signature = corpus_signature(company.id)
    words = query_words(company_id=company.id, query=query)
    terms = list(dict.fromkeys(w.lexeme for w in words))
    corrections = {} if cross_lingual else correct_terms(company_id=company.id, words=words, signature=signature)
    weights = {t: 1.0 for t in terms}
    for original, (term, weight) in corrections.items():
        weights.pop(original, None)
        weights[term] = max(weights.get(term, 0.0), weight)
    lexical = lexical_search(company_id=company.id, terms=list(weights), limit=pool, weights=weights,
                             signature=signature)
    corrected_query = None
    if corrections and settings.RAG_TYPO_REEMBED:
        # The embedding model reads "mesages" as noise: embed the question with the corrections spelt out.
        forms = _surface_forms(chunk_ids=[cid for cid, _, _ in lexical[:10]],
                               terms=[term for term, _ in corrections.values()])
        typed = {w.token: forms[corrections[w.lexeme][0]] for w in words
                 if w.lexeme in corrections and corrections[w.lexeme][0] in forms}
        if typed:
            corrected_query = corrected_question(query, typed)
            vector = embed_query(corrected_query, model)
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
                   1 - (c.embedding <=> %s::vector),
                   CASE WHEN c.section = '' THEN '{}'::text[]
                        ELSE tsvector_to_array(to_tsvector(%s::regconfig, c.section)) END
            FROM rag_chunk c JOIN rag_document d ON d.id = c.document_id
            WHERE c.id = ANY(%s) AND c.company_id = %s AND c.live AND (%s::bigint[] IS NULL OR c.document_id = ANY(%s))
            """,
            [vector_literal(vector), settings.RAG_TEXT_SEARCH_CONFIG, list(ids), company.id,
             document_ids, document_ids],
        )
        rows = {row[0]: row for row in cursor.fetchall()}
    if not rows:
        return []
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
        w = settings.RAG_CROSS_LINGUAL_LEXICAL_WEIGHT if cross_lingual else settings.RAG_FUSION_LEXICAL_WEIGHT
        lex_n = _minmax(bm25, keys, missing=0.0)
        den_n = _minmax(cosine, keys)
        fused = {cid: w * lex_n[cid] + (1 - w) * den_n[cid] for cid in keys}
    boost = settings.RAG_SECTION_BOOST
    if boost > 0 and weights:
        # Section title as a field of its own (BM25F's idea, simplified): the share of the question's
        # terms that the chunk's section heading contains lifts the chunk by up to ``boost``.
        total = sum(weights.values())
        for cid in keys:
            heading = set(rows[cid][8])
            share = sum(w for t, w in weights.items() if t in heading) / total if heading else 0.0
            fused[cid] = (fused[cid] + boost * share) / (1 + boost)
    ranked = sorted(keys, key=lambda cid: (-fused[cid], cid))[:k]
    best_cosine = max(cosine.values())
    best_dense_doc = rows[max(cosine, key=lambda cid: (cosine[cid], -cid))][1]
    best_lexical_doc = rows[lexical[0][0]][1] if lexical and lexical[0][0] in rows else None
    extra = {
        "dense_z": _dense_z(company.id, vector, best_cosine, signature + (model,)),
        "embedding_model": model,
        "cross_lingual": cross_lingual,
        "corpus_chunks": signature[0],
        "best_cosine": best_cosine,
        "legs_agree": best_lexical_doc == best_dense_doc,
        "query_terms": terms,
        "unknown_terms": list(dict.fromkeys(w.lexeme for w in words if not w.known and w.lexeme not in corrections)),
        "corrected_terms": {original: term for original, (term, _) in corrections.items()},
        "corrected_query": corrected_query,
    }
    return [
        RetrievedChunk(chunk_id=cid, document_id=rows[cid][1], document_title=rows[cid][2],
                       file_name=rows[cid][3], section=rows[cid][4], page=rows[cid][5], text=rows[cid][6],
                       score=round(fused[cid], 6), dense_similarity=round(cosine[cid], 6),
                       bm25=round(bm25.get(cid, 0.0), 6), matched_terms=matched.get(cid, 0), extra=extra)
        for cid in ranked
    ]
