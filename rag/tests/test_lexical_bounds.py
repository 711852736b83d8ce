"""The BM25 leg reads a bounded, best-first slice of each term's postings."""
import numpy as np
import pytest

from rag.lexical import lexical_search, query_terms
from rag.tests.test_retrieval_quality import _unit, _write

pytestmark = pytest.mark.django_db


def test_postings_per_term_cap_keeps_the_densest_chunks(make_company, settings):
    company = make_company("bounded")
    texts = ["refund " + "filler words here " * n for n in range(1, 9)]  # the shorter, the denser
    ids = _write(company, texts, _unit(np.random.default_rng(1), len(texts)))
    terms = query_terms("refund")
    assert len(lexical_search(company_id=company.id, terms=terms, limit=10)) == 8  # under the cap: all
    settings.RAG_BM25_POSTINGS_PER_TERM = 3
    capped = lexical_search(company_id=company.id, terms=terms, limit=10)
    assert [cid for cid, _, _ in capped] == ids[:3]  # the three densest, best first


def test_unknown_terms_are_dropped_and_a_mixed_query_still_matches(make_company):
    company = make_company("mixed")
    ids = _write(company, ["invoices are sent monthly", "passwords reset by email"],
                 _unit(np.random.default_rng(2), 2))
    assert lexical_search(company_id=company.id, terms=query_terms("zebra quasar"), limit=5) == []
    found = lexical_search(company_id=company.id, terms=query_terms("zebra invoices"), limit=5)
    assert [cid for cid, _, _ in found] == [ids[0]]
