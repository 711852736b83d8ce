"""Retrieval quality properties on real PostgreSQL: BM25 ranking, any-term matching, typo tolerance,
tenant isolation with the filtered-HNSW path, and the refusal gate.

Chunks are written by the ingest path's own writer (``rag.chunk_store._document_write_chunks``: rows,
tsvector, BM25 postings, corpus statistics) with synthetic unit vectors, so no model is loaded
except in the one test marked ``slow``.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rag.models import Document
from rag.relevance import is_answerable
from rag.dense import dense_search
from rag.lexical import lexical_search, query_terms
from rag.retrieval import RetrievedChunk, chunk_search
from rag.chunk_store import _document_write_chunks
from rag.ingestion import _versions_after_ingest
from rag.splitting import ChunkDraft

pytestmark = pytest.mark.django_db

DIM = 384


def _unit(rng: np.random.Generator, n: int = 1) -> np.ndarray:
    v = rng.standard_normal((n, DIM))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _write(company, texts: list[str], vectors: np.ndarray, *, name: str = "doc.md", per_doc: int = 500) -> list[int]:
    """Index ``texts`` for ``company`` (documents of ``per_doc`` chunks); returns the chunk ids in order."""
    ids: list[int] = []
    for start in range(0, len(texts), per_doc):
        part = texts[start:start + per_doc]
        key = f"{company.id}-{name}-{start}"
        document = Document.objects.create(company=company, title=f"{name} {start}", file_name=f"{start}-{name}",
                                           checksum=hashlib.sha256(key.encode()).hexdigest(),
                                           status=Document.Status.READY)
        drafts = [ChunkDraft(text=t, section="", page=None, token_count=len(t.split())) for t in part]
        _document_write_chunks(company=company, document=document, title="", drafts=drafts,
                               vectors=[list(map(float, v)) for v in vectors[start:start + per_doc]])
        _versions_after_ingest(company=company, documents=[document])  # a version makes them live
        ids += list(document.chunks.order_by("ordinal").values_list("id", flat=True))
    return ids


FILLER = [
    "Open the account settings page to change your display name.",
    "Account settings let you change the language of the interface.",
    "Your account settings also hold notification preferences.",
    "The settings page of an account shows the plan and the invoices.",
    "Change account settings from the gear menu at the top right.",
    "Account owners can change settings for every member.",
]


@pytest.fixture
def helpdesk(make_company):
    company = make_company("helpdesk")
    texts = FILLER * 3 + [
        "Rotate the webhook signing secret when a developer leaves.",          # rare term: webhook
        "Account settings account settings account settings change change.",  # only common terms, repeated
        "Exports of all messages are available to administrators.",
    ]
    ids = _write(company, texts, _unit(np.random.default_rng(1), len(texts)))
    return company, dict(zip(["webhook", "common", "export"], ids[-3:]))


def test_bm25_ranks_a_rare_query_term_above_common_ones(helpdesk):
    company, ids = helpdesk
    results = lexical_search(company_id=company.id, terms=query_terms("account settings webhook"), limit=5)
    assert results[0][0] == ids["webhook"]  # idf of "webhook" (1 chunk) beats tf of "account"/"settings" (20)
    assert results[0][2] == 1 and results[1][1] < results[0][1]


def test_a_question_matches_on_any_of_its_terms(helpdesk):
    company, ids = helpdesk
    # No chunk has all of these words; "all words must match" would find nothing.
    results = lexical_search(company_id=company.id, terms=query_terms("webhook pizza unicorn volcano"), limit=5)
    assert [r[0] for r in results] == [ids["webhook"]]
    results = lexical_search(company_id=company.id, terms=query_terms("exports of webhook"), limit=5)
    assert {r[0] for r in results} == {ids["webhook"], ids["export"]}


def test_a_misspelt_word_still_finds_its_chunk(helpdesk, settings):
    settings.RAG_TYPO_REEMBED = False  # synthetic vectors: no model...
    settings.RAG_FUSION_LEXICAL_WEIGHT = 1.0  # ...and a random query vector: rank by the lexical leg alone
    company, ids = helpdesk
    vector = list(map(float, _unit(np.random.default_rng(7))[0]))
    results = chunk_search(company=company, query="how to rotate the webhok secrett", k=3, query_vector=vector)
    assert results[0].chunk_id == ids["webhook"]
    assert results[0].extra["corrected_terms"] == {"webhok": "webhook", "secrett": "secret"}
    # A real English word that the corpus lacks is not "corrected" into a look-alike.
    results = chunk_search(company=company, query="pizza", k=3, query_vector=vector)
    assert results[0].extra["corrected_terms"] == {} and results[0].extra["unknown_terms"] == ["pizza"]


def test_small_company_beside_a_large_one_gets_its_own_best_k_through_hnsw(make_company, settings):
    settings.RAG_EXACT_SEARCH_MAX_CHUNKS = 10  # both companies take the filtered HNSW path
    settings.RAG_TYPO_REEMBED = False
    rng = np.random.default_rng(42)
    large, small = make_company("large"), make_company("small")
    large_vectors = _unit(rng, 3000)
    # A company's chunks share a topic: the small one's vectors sit around a centre (cosine ~0.5 to it).
    small_vectors = _unit(rng)[0] + _unit(rng, 30)
    small_vectors /= np.linalg.norm(small_vectors, axis=1, keepdims=True)
    large_ids = _write(large, [f"large chunk number {i} about storage quotas" for i in range(3000)], large_vectors)
    small_ids = _write(small, [f"small chunk number {i} about storage quotas" for i in range(30)], small_vectors)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE rag_chunk")  # reltuples: the small company's share is 1 %

    for target in (3, 17, 29):
        query = small_vectors[target] + 0.5 * _unit(rng)[0] / np.sqrt(DIM) * 10
        query = query / np.linalg.norm(query)
        exact = [small_ids[i] for i in np.argsort(-(small_vectors @ query))[:5]]
        with CaptureQueriesContext(connection) as captured:
            dense = dense_search(company_id=small.id, vector=list(map(float, query)), limit=5)
        statements = [q["sql"] for q in captured.captured_queries]
        assert any("hnsw.ef_search" in sql for sql in statements)  # the index answered...
        assert not any("enable_indexscan" in sql for sql in statements)  # ...with k rows: no exact fallback
        assert [cid for cid, _ in dense] == exact
        results = chunk_search(company=small, query="storage quotas", k=5, query_vector=list(map(float, query)))
        assert len(results) == 5 and results[0].chunk_id == small_ids[target]
        assert {r.chunk_id for r in results} <= set(small_ids)

    query = large_vectors[1234]
    dense = dense_search(company_id=large.id, vector=list(map(float, query)), limit=20)
    assert len(dense) == 20 and dense[0][0] == large_ids[1234] and {cid for cid, _ in dense} <= set(large_ids)

    # When even the largest ef_search cannot yield k of the company's rows (share 1 % x 200 < 5), the exact
    # scan runs at once instead of after a short HNSW scan.
    settings.RAG_HNSW_EF_SEARCH_MAX = 200
    query = small_vectors[3]
    with CaptureQueriesContext(connection) as captured:
        dense = dense_search(company_id=small.id, vector=list(map(float, query)), limit=5)
    statements = [q["sql"] for q in captured.captured_queries]
    assert not any("hnsw.ef_search" in sql for sql in statements)
    assert any("enable_indexscan" in sql for sql in statements)
    assert [cid for cid, _ in dense] == [small_ids[i] for i in np.argsort(-(small_vectors @ query))[:5]]


def _result(best_cosine: float, dense_z: float | None, chunks: int, *, terms: int = 3, matched: int = 3,
            unknown: int = 0) -> list[RetrievedChunk]:
    extra = {"best_cosine": best_cosine, "dense_z": dense_z, "corpus_chunks": chunks,
             "query_terms": [f"t{i}" for i in range(terms)], "unknown_terms": [f"t{i}" for i in range(unknown)],
             "corrected_terms": {}, "embedding_model": "all-MiniLM-L6-v2"}
    return [RetrievedChunk(chunk_id=1, document_id=1, document_title="t", file_name="f.md", section="", page=None,
                           text="x", score=1.0, dense_similarity=best_cosine, bm25=0.0, matched_terms=matched,
                           extra=extra)]


def test_gate_rules(settings):
    settings.RAG_ANSWERABLE_MIN_SIMILARITY = 0.40
    assert not is_answerable(question="q", results=[])
    assert not is_answerable(question="q", results=_result(0.35, 9.0, 400))   # below the floor: refuse
    assert is_answerable(question="q", results=_result(0.75, 4.0, 400))       # close and standing out: answer
    # The same search, but the question's words are not in any document ("refund policy"): refuse.
    assert not is_answerable(question="q", results=_result(0.55, 1.0, 400, matched=1, unknown=2))
    assert is_answerable(question="q", results=_result(0.55, 1.0, 400, matched=3, unknown=0))
    # The threshold can be overridden: 0 answers everything above the floor, 1 nothing.
    settings.RAG_ANSWERABLE_THRESHOLD = 0.0
    assert is_answerable(question="q", results=_result(0.45, -3.0, 400, matched=0, unknown=3))
    settings.RAG_ANSWERABLE_THRESHOLD = 1.0
    assert not is_answerable(question="q", results=_result(0.95, 9.0, 400))


@pytest.mark.slow
def test_gate_refuses_off_topic_and_answers_on_topic_with_the_real_model(make_company):
    from rag.embeddings import embed_texts

    company = make_company("gate")
    texts = [
        "To reset your password, open Settings, choose Security and click Reset password.",
        "Two-factor authentication adds a code from an authenticator app to every login.",
        "Invoices are in Billing > History; download them as PDF for your accountant.",
        "Sharing links expire after 30 days unless the owner sets another expiry date.",
        "The team plan gives every member 2 TB of storage; the free plan gives 5 GB.",
        "Deleted files stay in the Trash for 30 days before they are removed for good.",
        "The desktop sync app runs on Windows, macOS and Ubuntu Linux.",
        "Support answers by e-mail from 08:00 to 18:00 CET on working days.",
        "Admins remove a member in the admin console; the member's files move to the admin.",
        "The API allows 600 requests per minute per token; beyond that it answers 429.",
        "Webhook requests carry an X-Signature header: an HMAC-SHA256 of the body.",
        "Yearly plans can be refunded within 14 days of the purchase.",
    ]
    _write(company, texts, np.asarray(embed_texts(texts)))
    on_topic = "how do i download my invoices"
    off_topic = "who won the champions league final"
    found = chunk_search(company=company, query=on_topic, k=3)
    assert "Invoices" in found[0].text and is_answerable(question=on_topic, results=found)
    assert not is_answerable(question=off_topic, results=chunk_search(company=company, query=off_topic, k=3))
