"""Plain text (``.txt`` that is not reStructuredText): blank lines separate paragraphs, an underlined line
(``Title`` over ``=====``) is a heading, bullet lines ("-", "*", "•", "1.") stay one per line."""
from __future__ import annotations

import re

from rag.extraction import hygiene
from rag.extraction.builder import SectionBuilder

_ADORNMENT = re.compile(r"^([=\-`:'\"~^_*+#<>.])\1{2,}\s*$")
_ITEM = re.compile(r"^\s*(?:[-*•]\s+|\d{1,3}[.)]\s+)")


def decode(data: bytes) -> str:
    """Text of a text-format file: UTF-16 with a byte-order mark, else UTF-8, Windows-1252, Latin-1.

    Raises:
        ValueError: the bytes hold NUL characters (a binary file with a text extension); ``extract``
            reports it as ``document_unreadable``.
    """
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # Windows "Unicode" text files
        return data.decode("utf-16")
    if b"\x00" in data[:65536]:
        raise ValueError("this is a binary file, not text (it contains NUL bytes)")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def read_text(source: str, builder: SectionBuilder) -> str:
    """Feed plain text to ``builder``; returns the first heading ("" when none)."""
    lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            if all(_ITEM.match(line) for line in paragraph):
                builder.block("\n".join(line.strip() for line in paragraph))
            else:
                builder.block(hygiene.join_lines("\n".join(paragraph)))
            paragraph.clear()

    index = 0
    while index < len(lines):
        line = lines[index]
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if (line.strip() and not _ADORNMENT.match(line) and _ADORNMENT.match(following)
                and len(following.rstrip()) >= len(line.rstrip())):
            if paragraph and _ADORNMENT.match(paragraph[-1]):
                paragraph.pop()  # the overline of an over-and-underlined title
            flush()
            builder.heading(line.strip())
            index += 2
            continue
        if not line.strip():
            flush()
        else:
            paragraph.append(line)
        index += 1
    flush()
    return builder.any_heading
