"""Text hygiene: the one implementation every format's text, title and section names go through.

Steps of :func:`clean`, in order (docs/retrieval.md, "Text hygiene"):

1. line ends: ``\\r\\n`` and ``\\r`` become ``\\n``;
2. soft hyphens (U+00AD) are removed, and a soft hyphen at a line end joins the two lines;
3. NUL and the other C0/C1 control characters (all but tab and line feed) are removed, and so are the
   invisible format characters that break words apart: zero-width space (U+200B), word joiner
   (U+2060), byte-order mark (U+FEFF), and the bidirectional embedding, override and isolate controls
   (U+202A-U+202E, U+2066-U+2069), which can make an answer read differently from the text it quotes
   ("Trojan Source", CVE-2021-42574; Unicode TR 36 section 2.3); ZWJ/ZWNJ stay (emoji sequences, Persian),
   and so do the left-to-right and right-to-left marks (U+200E, U+200F), which only order neutral characters;
4. Unicode NFKC: ligatures (``ﬁ`` -> ``fi``), full-width and compatibility forms, composed accents
   (``Zu\\u0308rich`` -> ``Zürich``), no-break and other spaces -> space;
5. whitespace: tabs become spaces, runs of spaces inside a line collapse to one (a line's leading
   indentation is kept: nested list items and code depend on it), trailing spaces go, three or more
   line breaks become one blank line, the text is stripped;
6. outside code, an empty pair of parentheses after a space (``click the download () icon``) is removed:
   it is what is left of an icon (``(<i class="fa fa-download"></i>)`` in Zulip's help centre, an icon
   font or an image without alt text in HTML, DOCX and PDF exports); ``f()`` in prose stays.

:func:`join_lines` turns the soft-wrapped lines of one paragraph into one line (sentence splitting
works on lines): a word hyphenated across the break (``configu-`` / ``ration``) is joined when the
next line starts with a lower-case letter; other breaks become a space.
"""
from __future__ import annotations

import re
import unicodedata

_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b\u2060\ufeff\u202a-\u202e\u2066-\u2069]")
_SOFT_HYPHEN_BREAK = re.compile("\u00ad[ \t]*\n[ \t]*")
_INNER_SPACES = re.compile(r"(?<=\S)[ \t]{2,}")
_TRAILING = re.compile(r"[ \t]+\n")
_BLANKS = re.compile(r"\n{3,}")
_EMPTY_PARENS = re.compile(r"[ \t]\([ \t]*\)(?=[\s.,;:!?]|$)", re.M)
_HYPHEN_WRAP = re.compile(r"([^\W\d_])-[ \t]*\n[ \t]*(?=[^\W\d_])")


def clean(text: str, *, code: bool = False) -> str:
    """``text`` after the hygiene steps above (idempotent). ``code=True`` (code blocks) keeps runs of
    spaces inside lines, so columns in code stay aligned."""
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SOFT_HYPHEN_BREAK.sub("", text).replace("\u00ad", "")
    text = _CONTROLS.sub("", text)
    text = unicodedata.normalize("NFKC", text).replace("\t", "    " if code else " ")
    if not code:
        text = _INNER_SPACES.sub(" ", _EMPTY_PARENS.sub("", text))
    text = _TRAILING.sub("\n", text)
    return _BLANKS.sub("\n\n", text).strip("\n").rstrip() if code else _BLANKS.sub("\n\n", text).strip()


def clean_line(text: str) -> str:
    """One line of text (a title, a heading, a table cell): :func:`clean`, then every run of whitespace,
    line breaks included, becomes one space."""
    return " ".join(clean(text).split())


def join_lines(text: str) -> str:
    """The soft-wrapped lines of one paragraph as one line: hyphenated words joined, other breaks spaces."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SOFT_HYPHEN_BREAK.sub("", text)

    def dehyphenate(match: re.Match) -> str:
        following = text[match.end():match.end() + 1]
        return match.group(1) if following.islower() else match.group(1) + "-"

    text = _HYPHEN_WRAP.sub(dehyphenate, text)
    return " ".join(text.split())
