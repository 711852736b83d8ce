"""Deciding whether retrieved chunks answer the question at all (refusal instead of guessing).

The gate is a logistic model over evidence from the retriever (:func:`gate_features`):

- ``cosine``: cosine similarity of the company's closest chunk to the question (in the company's
  embedding model);
- ``peak``: how far that chunk stands out of the company's corpus for this question,
  ``z - sqrt(2 ln N)``: z = (best cosine - mean cosine) / std of the cosines over the company's N
  chunks, sqrt(2 ln N) the expected maximum of N standard normal draws (a query-performance
  predictor; 0 when the corpus is too small to tell);
- ``coverage``: share of the question's terms (PostgreSQL lexemes, typos corrected) that the best
  chunk contains (title and section included); ``top_coverage``: the best such share among the
  retrieved chunks;
- ``unknown``: share of the question's terms that no document of the company contains at all (a
  question about a "refund policy" in a corpus without the word "refund");
- ``short_question``: 1 for questions of at most two terms.

For a question in another language than the documents (rag/language.py) the lexical features say
nothing: they are replaced by their mean over answerable development questions (``neutral``).
P(answerable) = sigmoid(w . x + b); answer when it is at least the model's threshold. Coefficients,
neutral values and threshold per embedding model live in ``rag/gate_coefficients.json``, fitted by
``bench/fit_gate.py`` on the development question sets (leave-one-knowledge-base-out cross-validation;
the threshold is the highest whose cross-validated false-refusal rate is at most 0.05).
``RAG_ANSWERABLE_THRESHOLD`` overrides the threshold. docs/answers.md has the fit and its figures,
and what the gate cannot do (a near-miss question looks answerable to every retrieval signal; with a
chat model configured, its NOT_FOUND is the second line).
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

from django.conf import settings

from rag.retrieval import RetrievedChunk

FEATURES = ["cosine", "peak", "coverage", "top_coverage", "unknown", "short_question"]
LEXICAL_FEATURES = ["coverage", "top_coverage", "unknown"]
COEFFICIENTS_FILE = Path(__file__).with_name("gate_coefficients.json")


def dense_peak(results: list[RetrievedChunk]) -> float | None:
    """z - sqrt(2 ln N) of the search (None when the retriever did not report it)."""
    if not results:
        return None
    extra = results[0].extra or {}
    z, n = extra.get("dense_z"), extra.get("corpus_chunks")
    if z is None or not n:
        return None
    return z - math.sqrt(2 * math.log(max(n, 2)))


def gate_features(*, results: list[RetrievedChunk], cross_lingual: bool = False) -> dict[str, float]:
    """The gate's features (see the module docstring) for one search; ``results`` best first, non-empty.

    ``cross_lingual``: the question's language differs from the documents' (lexical features are then
    replaced by the model's neutral values in :func:`answerable_probability`).
    """
    extra = results[0].extra or {}
    terms = list(extra.get("query_terms") or [])
    corrected = extra.get("corrected_terms") or {}
    n_terms = max(len(terms), 1)
    best_cosine = max(extra.get("best_cosine", results[0].dense_similarity), results[0].dense_similarity)
    peak = dense_peak(results)
    return {
        "cosine": float(best_cosine),
        "peak": float(peak) if peak is not None else 0.0,
        "coverage": min(results[0].matched_terms / n_terms, 1.0),
        "top_coverage": min(max(r.matched_terms for r in results) / n_terms, 1.0),
        "unknown": len([t for t in extra.get("unknown_terms") or [] if t not in corrected]) / n_terms,
        "short_question": 1.0 if len(terms) <= 2 else 0.0,
        "cross_lingual": 1.0 if cross_lingual else 0.0,
    }


@lru_cache(maxsize=1)
def _coefficients() -> dict:
    return json.loads(COEFFICIENTS_FILE.read_text(encoding="utf-8"))


def gate_model(model: str) -> dict:
    """The fitted gate of embedding model ``model``: {"weights": {feature: w}, "bias", "threshold",
    "neutral": {feature: value}} (the default model's when ``model`` has none)."""
    from rag.embeddings import default_model

    models = _coefficients()["models"]
    return models.get(model) or models[default_model()]


def answerable_probability(features: dict[str, float], model: str) -> float:
    """P(answerable) of the fitted logistic gate of ``model`` for ``features`` (:func:`gate_features`)."""
    gate = gate_model(model)
    x = dict(features)
    if x.get("cross_lingual"):
        for name in LEXICAL_FEATURES:
            x[name] = gate["neutral"][name]
    z = gate["bias"] + sum(w * x[name] for name, w in gate["weights"].items())
    return 1.0 / (1.0 + math.exp(-z))


def answer_threshold(model: str) -> float:
    """The probability from which the gate answers: ``RAG_ANSWERABLE_THRESHOLD`` if set, else the fitted one."""
    if settings.RAG_ANSWERABLE_THRESHOLD is not None:
        return settings.RAG_ANSWERABLE_THRESHOLD
    return gate_model(model)["threshold"]


def is_answerable(*, question: str, results: list[RetrievedChunk]) -> bool:
    """True when the retrieved chunks are relevant enough to answer from.

    Args:
        question: the user's question (its language is compared with the best chunk's).
        results: the retriever's output, best first.
    """
    from rag.embeddings import default_model
    from rag.language import detect_language, is_cross_lingual

    if not results:
        return False
    extra = results[0].extra or {}
    best = max(extra.get("best_cosine", results[0].dense_similarity), results[0].dense_similarity)
    if best < settings.RAG_ANSWERABLE_MIN_SIMILARITY:
        return False
    model = extra.get("embedding_model") or default_model()
    cross = extra.get("cross_lingual")
    if cross is None:
        cross = is_cross_lingual(detect_language(question), detect_language(results[0].text[:600]))
    features = gate_features(results=results, cross_lingual=cross)
    return answerable_probability(features, model) >= answer_threshold(model)
