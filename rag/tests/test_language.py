"""rag/language.py: which language a question is in, and the note for a reader of another language."""
import json
from pathlib import Path

from rag import language

DEV_SET = Path(__file__).resolve().parents[2] / "bench" / "data" / "answers-zulip-dev.jsonl"


def test_questions_of_the_development_set_get_the_same_language_as_the_full_model_restricted():
    """Dropping py3langid's 97-language table changes no answer: every question of the zulip development
    set is detected as by a freshly loaded identifier restricted the library's own way."""
    from py3langid.langid import _load_identifier

    reference = _load_identifier(norm_probs=True, langs=language.LANGUAGES)
    questions = [json.loads(line)["question"] for line in DEV_SET.read_text().splitlines() if line.strip()]
    assert len(questions) >= 100
    detected = [language.detect_language(q) for q in questions]
    for question, code in zip(questions, detected):
        lang, probability = reference.classify(question)
        expected = lang if probability >= language.MIN_CONFIDENCE and sum(c.isalpha() for c in question) >= 3 \
            else None
        assert code == expected, question
    assert {"en", "ru", "es"} <= set(detected)


def test_the_identifier_keeps_only_the_languages_it_chooses_from():
    identifier = language._identifier()
    table, _, classes = identifier._full_model
    assert table.shape[1] == len(language.LANGUAGES) == len(classes)


def test_short_text_is_unknown_and_the_note_is_in_the_question_language():
    assert language.detect_language("ok") is None
    assert language.detect_language("How do I reset my password in the mobile app?") == "en"
    assert language.detect_language("¿Cómo cambio la contraseña de mi cuenta en la aplicación?") == "es"
    assert language.source_language_note("es", "en") == language.SOURCE_LANGUAGE_NOTES["es"]
    assert language.source_language_note("en", "en") is None
