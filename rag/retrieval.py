"""The retriever: hybrid dense (pgvector) + lexical (BM25 over Postgres full-text) search, fused.

Always scoped to one company. docs/retrieval.md has the design and the measurements. The legs have
modules of their own: rag/lexical.py (BM25 over the company's postings), rag/dense.py (the nearest chunks
by cosine, exact or HNSW by the company's share, and the ``dense_z`` signal); typo tolerance is
rag/vocabulary.py (the company's vocabulary and the corrections).

Fusion: min-max score blend (default) or reciprocal rank fusion, over the union of both legs'
candidates. Each result also carries, in ``extra``, the signals the refusal gate (rag/relevance.py) reads.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction

from rag.dense import dense_search, dense_z, vector_literal
from rag.lexical import lexical_search
from rag.vocabulary import corpus_signature, correct_terms, query_words
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


def _minmax(values: dict[int, float], keys: set[int], missing: float | None = None) -> dict[int, float]:
    present = [values[k] for k in keys if k in values]
    if not present:
        return {k: 0.0 for k in keys}
    low = min(present) if missing is None else min(min(present), missing)
    high = max(present)
    span = high - low
    return {k: ((values.get(k, low if missing is None else missing) - low) / span if span > 0 else 1.0)
            for k in keys}


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
        "dense_z": dense_z(company.id, vector, best_cosine, signature + (model,)),
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
