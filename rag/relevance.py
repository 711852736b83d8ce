"""Deciding whether retrieved chunks answer the question at all (refusal instead of guessing).

Two signals from the retriever (``RetrievedChunk.extra``, see rag/retrieval.py):

- ``best_cosine``: cosine similarity (all-MiniLM-L6-v2) of the company's chunk closest to the
  question (of the question as corrected for typos, when it was). A high value alone is enough.
- ``dense_peak``: how far that chunk stands out of the company's corpus for this question:
  ``z - sqrt(2 ln N)``, where z = (best cosine - mean cosine) / std of the cosines over the
  company's N chunks, and sqrt(2 ln N) is the expected maximum of N standard normal draws. A
  query-performance predictor (the best match of a question the corpus covers stands out; one about
  something the documents never discuss sits among many equally mediocre chunks); the extreme-value
  term keeps the threshold meaningful from a 50-chunk FAQ to a 100k-chunk manual.

Answerable = best_cosine >= ``RAG_ANSWERABLE_SIMILARITY`` or (dense_peak >= ``RAG_ANSWERABLE_MIN_PEAK``
and best_cosine >= ``RAG_ANSWERABLE_MIN_SIMILARITY``). docs/retrieval.md has the figures, including
what this gate cannot do (a question next to a covered topic, "how many people can join a call",
looks answerable to every retrieval signal; the chat model's NOT_FOUND is the second line there).
"""
from __future__ import annotations

import math

from django.conf import settings

from rag.retrieval import RetrievedChunk


def dense_peak(results: list[RetrievedChunk]) -> float | None:
    """z - sqrt(2 ln N) of the search (None when the retriever did not report it)."""
    if not results:
        return None
    extra = results[0].extra or {}
    z, n = extra.get("dense_z"), extra.get("corpus_chunks")
    if z is None or not n:
        return None
    return z - math.sqrt(2 * math.log(max(n, 2)))


def is_answerable(*, question: str, results: list[RetrievedChunk]) -> bool:
    """True when the retrieved chunks are relevant enough to answer from.

    Args:
        question: the user's question.
        results: the retriever's output, best first.
    """
    if not results:
        return False
    extra = results[0].extra or {}
    best = max(extra.get("best_cosine", results[0].dense_similarity), results[0].dense_similarity)
    if best >= settings.RAG_ANSWERABLE_SIMILARITY:
        return True
    if best < settings.RAG_ANSWERABLE_MIN_SIMILARITY:
        return False
    peak = dense_peak(results)
    if peak is None:  # too few chunks to tell a peak: the similarity floor alone decides
        return True
    return peak >= settings.RAG_ANSWERABLE_MIN_PEAK
