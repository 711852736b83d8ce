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

    return _load_identifier(norm_probs=True, langs=LANGUAGES)


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
