"""Which language a question or passage is in, and telling a reader that the source is in another one.

Detection: py3langid (Lui & Baldwin's langid.py, a naive Bayes over byte n-grams, numpy only),
restricted to ``LANGUAGES`` and trusted only at a normalised probability of at least
``MIN_CONFIDENCE``; a short or mixed text is "unknown" (None) rather than a guess.
"""
from __future__ import annotations

from functools import lru_cache

# The languages end users write in that the product is measured on (bench/data: en, ru, es, de, fr, pt),
# and a few neighbours so that those are not chosen by elimination.
LANGUAGES = ["en", "ru", "es", "de", "fr", "pt", "it", "nl", "uk", "pl", "tr", "zh", "ja"]
MIN_CONFIDENCE = 0.9
# "The source is in English", in the question's language (the extractive answer is the source's text).
SOURCE_LANGUAGE_NOTES = {
    "ru": "Ответ взят из документации на английском языке:",
    "uk": "Відповідь узято з документації англійською мовою:",
    "es": "La respuesta procede de nuestra documentación en inglés:",
    "pt": "A resposta vem da nossa documentação em inglês:",
    "de": "Die Antwort stammt aus unserer englischsprachigen Dokumentation:",
    "fr": "La réponse provient de notre documentation en anglais :",
    "it": "La risposta proviene dalla nostra documentazione in inglese:",
    "nl": "Het antwoord komt uit onze Engelstalige documentatie:",
    "pl": "Odpowiedź pochodzi z naszej dokumentacji w języku angielskim:",
    "tr": "Yanıt İngilizce belgelerimizden alınmıştır:",
}
DEFAULT_NOTE = "The answer is from our documentation in English:"


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import _load_identifier

    identifier = _load_identifier(norm_probs=True, langs=LANGUAGES)
    # set_languages keeps the 97-language model (28 MB of float16) for a later reset we never make; keep
    # only the LANGUAGES columns: the process holds 27 MB less (issue 15, docs/retrieval.md).
    identifier._full_model = (identifier.nb_ptc, identifier.nb_pc, identifier.nb_classes)
    return identifier


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of ``text``'s language, or None when unsure (probability < MIN_CONFIDENCE, or
    fewer than 3 letters)."""
    if sum(ch.isalpha() for ch in text) < 3:
        return None
    language, probability = _identifier().classify(text)
    return language if probability >= MIN_CONFIDENCE else None


def is_cross_lingual(question_language: str | None, source_language: str | None) -> bool:
    """True when both languages are known and differ."""
    return bool(question_language and source_language and question_language != source_language)


def source_language_note(question_language: str | None, source_language: str | None) -> str | None:
    """The line put before an extractive answer whose source is in another language than the question
    (None when they match or either is unknown). Only English sources have a note: the documents
    measured here are English."""
    if not is_cross_lingual(question_language, source_language) or source_language != "en":
        return None
    return SOURCE_LANGUAGE_NOTES.get(question_language, DEFAULT_NOTE)


_company_languages: dict[int, tuple[tuple[int, int], str | None]] = {}
# Chunks sampled to tell a company's documents' language.
LANGUAGE_SAMPLE = 30


def company_language(company_id: int) -> str | None:
    """The language most of the company's documents are written in (None when unsure or empty).

    Detected on up to ``LANGUAGE_SAMPLE`` of its chunks (a majority of confident detections), cached per
    process until the company's corpus changes (rag_corpusstat).
    """
    from collections import Counter

    from django.db import connection

    from rag.vocabulary import corpus_signature

    signature = corpus_signature(company_id)
    cached = _company_languages.get(company_id)
    if cached and cached[0] == signature:
        return cached[1]
    with connection.cursor() as cursor:
        cursor.execute("SELECT text FROM rag_chunk WHERE company_id = %s AND live ORDER BY id LIMIT %s",
                       [company_id, LANGUAGE_SAMPLE * 4])
        texts = [row[0] for row in cursor.fetchall()][::4][:LANGUAGE_SAMPLE]
    votes = Counter(lang for lang in (detect_language(t[:600]) for t in texts) if lang)
    language = None
    if votes:
        top, count = votes.most_common(1)[0]
        language = top if count * 2 > len(texts) else None
    _company_languages[company_id] = (signature, language)
    return language
