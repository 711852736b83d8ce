"""Deciding whether retrieved chunks answer the question at all (refusal instead of guessing).

The gate looks at the best chunk's cosine similarity (all-MiniLM-L6-v2) and
its lexical evidence (BM25 and matched query terms). Thresholds are settings
tuned on the help-centre dev question sets (see docs/retrieval.md).
"""
from __future__ import annotations

from django.conf import settings

from rag.retrieval import RetrievedChunk


def is_answerable(*, question: str, results: list[RetrievedChunk]) -> bool:
    """True when the best retrieved chunk is relevant enough to answer from.

    Args:
        question: the user's question.
        results: the retriever's output, best first.
    """
    if not results:
        return False
    best = results[0]
    if best.dense_similarity >= settings.RAG_ANSWERABLE_MIN_SIMILARITY:
        return True
    return best.dense_similarity >= settings.RAG_ANSWERABLE_MIN_SIMILARITY_WITH_TERMS and best.matched_terms >= 2
