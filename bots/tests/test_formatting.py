"""Answers become valid Telegram HTML, split under 4096 characters without cutting a tag."""
import pytest

from bots.formatting import format_answer
from saas_bot.testing.telegram_emulator import parse_html, utf16_len

SOURCES = [{"document": "a.md", "title": "Guide <beta> & more", "section": "Links", "page": None},
           {"document": "b.pdf", "title": "API", "section": None, "page": 2}]


def test_ten_thousand_characters_split_on_paragraphs_with_formatting_intact():
    paragraphs = [f"Paragraph {i}: " + ("lorem ipsum & <dolor> sit amet. " * 12) for i in range(30)]
    text = "\n\n".join(paragraphs)
    assert len(text) > 10_000
    parts = format_answer(text, SOURCES)
    assert len(parts) >= 3
    rebuilt = []
    for part in parts:
        visible, entities = parse_html(part.html)  # raises like Telegram on a broken tag or entity
        assert utf16_len(visible) <= 4096
        rebuilt.append(visible)
    joined = "\n\n".join(rebuilt)
    for paragraph in paragraphs:
        assert paragraph.strip() in joined  # no paragraph cut in the middle
    assert "Sources:" in rebuilt[-1] and "Guide <beta> & more" in rebuilt[-1]


@pytest.mark.parametrize("text", [
    "if a < b && c > d then <script>alert(1)</script>",
    "*unbalanced _markdown [link](http://x ~~ `code",
    "emoji 👩🏽‍💻🚀 and flags 🇩🇪 in text",
    "مرحبا بالعالم — עברית וערבית mixed with English",
    "&amp; already escaped? &lt;b&gt;",
])
def test_hostile_text_is_valid_html(text):
    (part,) = format_answer(text, SOURCES)
    visible, _ = parse_html(part.html)
    assert text in visible
    assert part.plain.startswith(text)


def test_one_huge_paragraph_is_split_at_sentences():
    text = " ".join(f"Sentence number {i} ends here." for i in range(900))
    parts = format_answer(text)
    assert len(parts) > 1
    for part in parts:
        visible, _ = parse_html(part.html)
        assert len(visible) <= 4096 and visible.rstrip().endswith(".")
