"""Per-company partial HNSW indexes (rag/company_hnsw.py) on real PostgreSQL + pgvector: built past the
threshold, used by the dense leg's query (EXPLAIN), as good as the exact scan on a small synthetic company
(live filter included), dropped when the company is deleted or shrinks.

CREATE / DROP INDEX CONCURRENTLY cannot run inside a transaction, so these tests use a transactional
database (rows are truncated after each test; the indexes are dropped by the fixture).
"""
from __future__ import annotations

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from rag.company_hnsw import (
    IndexBuildInTransaction,
    company_hnsw_index_drop,
    company_hnsw_index_name,
    company_hnsw_indexes,
    company_hnsw_indexes_reconcile,
)
from rag.dense import dense_path, dense_search
from rag.tests.test_retrieval_quality import _unit, _write

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def two_companies(make_company, settings):
    """"big" (1,200 chunks around one topic) past a 1,000-chunk threshold, "small" (300 chunks) below it."""
    settings.RAG_COMPANY_HNSW_MIN_CHUNKS = 1000
    settings.RAG_EXACT_SEARCH_MAX_CHUNKS = 100
    rng = np.random.default_rng(7)
    big, small = make_company("big"), make_company("small")
    # Clustered like a real corpus (cosine ~0.5 to a centre), so the nearest neighbours are not a near-tie.
    big_vectors = _unit(rng)[0] + _unit(rng, 1200)
    big_vectors /= np.linalg.norm(big_vectors, axis=1, keepdims=True)
    big_ids = _write(big, [f"big chunk {i} about invoices" for i in range(1200)], big_vectors)
    small_ids = _write(small, [f"small chunk {i} about invoices" for i in range(300)], _unit(rng, 300))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE rag_chunk")
    yield big, small, big_vectors, big_ids, small_ids
    for company_id in company_hnsw_indexes():
        company_hnsw_index_drop(company_id=company_id)


def _explain_dense(company_id: int, vector: list[float]) -> str:
    """EXPLAIN of the SELECT dense_search ran, with the SET LOCALs it ran before it."""
    with CaptureQueriesContext(connection) as captured:
        dense_search(company_id=company_id, vector=vector, limit=50)
    statements = [q["sql"] for q in captured.captured_queries]
    sets = [sql for sql in statements if sql.startswith("SET LOCAL")]
    select = [sql for sql in statements if sql.startswith("SELECT id, 1 - (embedding")][0]
    with transaction.atomic(), connection.cursor() as cursor:
        for statement in sets:
            cursor.execute(statement)
        cursor.execute("EXPLAIN " + select)
        return "\n".join(row[0] for row in cursor.fetchall())


def test_index_built_past_the_threshold_and_used_by_the_dense_query(two_companies, settings):
    big, small, big_vectors, big_ids, _ = two_companies
    query = list(map(float, big_vectors[10]))
    assert dense_path(big.id, 50) == "hnsw"  # before: the global index, filtered by company
    assert "chunk_embedding_hnsw" in _explain_dense(big.id, query)

    result = company_hnsw_indexes_reconcile()

    assert list(result.created) == [big.id] and not result.dropped
    assert company_hnsw_indexes() == {big.id: True}
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [company_hnsw_index_name(big.id)])
        definition = cursor.fetchone()[0]
    assert f"WHERE (company_id = {big.id})" in definition and "hnsw (embedding vector_cosine_ops)" in definition
    assert dense_path(big.id, 50) == "company_hnsw" and dense_path(small.id, 50) == "hnsw"
    plan = _explain_dense(big.id, query)
    assert f"Index Scan using {company_hnsw_index_name(big.id)}" in plan, plan
    assert f"hnsw.ef_search = {settings.RAG_COMPANY_HNSW_EF_SEARCH}" in " ".join(q["sql"] for q in _captured(big.id, query))
    # A second run changes nothing.
    again = company_hnsw_indexes_reconcile()
    assert again.kept == [big.id] and not again.created and not again.dropped


def _captured(company_id: int, vector: list[float]) -> list[dict]:
    with CaptureQueriesContext(connection) as captured:
        dense_search(company_id=company_id, vector=vector, limit=50)
    return captured.captured_queries


def test_company_index_gives_the_exact_top_results_with_the_live_filter(two_companies):
    big, small, big_vectors, big_ids, small_ids = two_companies
    company_hnsw_indexes_reconcile()
    # A fifth of the big company's chunks leave the live version (kept for rollback): they stay in the index
    # but must not be returned, and the rest must still be the exact nearest.
    not_live = set(big_ids[::5])
    with connection.cursor() as cursor:
        cursor.execute("UPDATE rag_chunk SET live = false WHERE id = ANY(%s)", [sorted(not_live)])
    live_mask = np.array([cid not in not_live for cid in big_ids])
    rng = np.random.default_rng(3)
    overlaps = []
    for target in range(1, 1200, 60):
        query = big_vectors[target] + 0.05 * _unit(rng)[0]
        query /= np.linalg.norm(query)
        scores = np.where(live_mask, big_vectors @ query, -np.inf)
        exact = [big_ids[i] for i in np.argsort(-scores)[:50]]
        statements = _captured(big.id, list(map(float, query)))
        assert not any("enable_indexscan" in q["sql"] for q in statements)  # answered by the index, not the fallback
        found = [cid for cid, _ in dense_search(company_id=big.id, vector=list(map(float, query)), limit=50)]
        assert len(found) == 50 and not set(found) & not_live and not set(found) & set(small_ids)
        assert found[:10] == exact[:10]
        overlaps.append(len(set(found) & set(exact)) / 50)
    assert np.mean(overlaps) >= 0.98


def test_index_dropped_when_the_company_is_deleted_or_shrinks(two_companies, settings):
    big, small, *_ = two_companies
    settings.RAG_COMPANY_HNSW_MIN_CHUNKS = 250  # both companies get one
    assert sorted(company_hnsw_indexes_reconcile().created) == sorted([big.id, small.id])

    small_id = small.id
    small.delete()  # the deletion commits, then the drop task runs (eager in tests)
    assert company_hnsw_indexes() == {big.id: True}
    assert dense_search(company_id=small_id, vector=[1.0] + [0.0] * 383, limit=5) == []

    # Past the threshold's half the index stays (no rebuild churn around the threshold); below it, it goes.
    settings.RAG_COMPANY_HNSW_MIN_CHUNKS = 2000
    assert company_hnsw_indexes_reconcile().kept == [big.id]
    settings.RAG_COMPANY_HNSW_MIN_CHUNKS = 2500
    assert company_hnsw_indexes_reconcile().dropped == [big.id]
    assert company_hnsw_indexes() == {}
    assert dense_path(big.id, 50) == "hnsw"


def test_invalid_leftover_is_rebuilt_and_ddl_refused_in_a_transaction(two_companies):
    big, *_ = two_companies
    name = company_hnsw_index_name(big.id)
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE INDEX {name} ON rag_chunk USING hnsw (embedding vector_cosine_ops) "
                       f"WHERE company_id = {big.id}")
        # What an interrupted CREATE INDEX CONCURRENTLY leaves behind.
        cursor.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", [name])
    assert company_hnsw_indexes() == {big.id: False}
    assert dense_path(big.id, 50) == "hnsw"  # an invalid index is never chosen

    with transaction.atomic(), pytest.raises(IndexBuildInTransaction):
        company_hnsw_indexes_reconcile()

    call_command("hnsw_indexes")
    assert company_hnsw_indexes() == {big.id: True}
    assert dense_path(big.id, 50) == "company_hnsw"
