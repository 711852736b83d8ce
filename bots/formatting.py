"""Safe HTML formatting of answers for Telegram, split at the message limit.

Telegram's HTML parse mode needs ``<``, ``>`` and ``&`` escaped in text
(Bot API, "Formatting options"). We build each message from whole blocks, so a
tag is never cut; a block longer than the limit is split on paragraph, then
sentence, then word boundaries before escaping, so an entity is never cut
either. Each part also carries a plain-text twin for the fallback when
Telegram still rejects the formatting.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass

from bots.telegram import MESSAGE_MAX_CHARS


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of Telegram's 4,096 message limit (Bot API,
    "sendMessage": "1-4096 characters after entities parsing"; Telegram counts UTF-16 code units, so an
    emoji outside the BMP counts 2)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _chars_within(text: str, limit: int) -> int:
    """How many leading characters of ``text`` fit in ``limit`` UTF-16 code units."""
    units = 0
    for index, char in enumerate(text):
        units += 2 if ord(char) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


@dataclass
class Part:
    """One Telegram message: HTML text and its plain-text equivalent."""

    html: str
    plain: str


@dataclass
class _Block:
    plain: str
    html: str


def _split_plain(text: str, limit: int) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` UTF-16 code units at the best boundary available."""
    if utf16_len(text) <= limit:
        return [text]
    pieces: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        window = rest[:_chars_within(rest, limit)]
        limit_chars = len(window)
        cut = -1
        for pattern in (r"\n\s*\n", r"\n", r"(?<=[.!?…])\s", r"\s"):
            matches = [m.end() for m in re.finditer(pattern, window)]
            if matches and matches[-1] > limit_chars // 3:
                cut = matches[-1]
                break
        if cut <= 0:
            cut = max(limit_chars, 1)
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return [p for p in pieces if p]


def source_line(number: int, source: dict) -> tuple[str, str]:
    """A source as (plain, html): ``1. Title — Section (p. 2)``."""
    where = source.get("section") or ""
    page = f" (p. {source['page']})" if source.get("page") else ""
    title = source.get("title") or source.get("document") or "Document"
    plain = f"{number}. {title}" + (f" — {where}" if where else "") + page
    html_text = f"{number}. <i>{html.escape(title)}</i>" + (f" — {html.escape(where)}" if where else "") + page
    return plain, html_text


def format_answer(text: str, sources: list[dict] | None = None, *, limit: int = MESSAGE_MAX_CHARS) -> list[Part]:
    """Render an answer and its sources as Telegram messages of at most ``limit`` UTF-16 code units each.

    Args:
        text: the answer, plain text (anything in it is escaped).
        sources: dicts with title/document, section, page.

    Returns:
        One or more parts; every ``html`` is valid Telegram HTML on its own.
    """
    # Escaping can grow the text (& -> &amp;), so plain pieces are cut with room to spare.
    blocks: list[_Block] = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        for piece in _split_plain(paragraph.strip(), limit // 2):
            if piece:
                blocks.append(_Block(plain=piece, html=html.escape(piece, quote=False)))
    if sources:
        lines = [source_line(i, s) for i, s in enumerate(sources, start=1)]
        blocks.append(_Block(plain="Sources:\n" + "\n".join(p for p, _ in lines),
                             html="<b>Sources:</b>\n" + "\n".join(h for _, h in lines)))
    parts: list[Part] = []
    current: list[_Block] = []

    def flush() -> None:
        if current:
            parts.append(Part(html="\n\n".join(b.html for b in current), plain="\n\n".join(b.plain for b in current)))
            current.clear()

    for block in blocks:
        candidate = "\n\n".join([b.html for b in current] + [block.html])
        if current and utf16_len(candidate) > limit:
            flush()
        current.append(block)
    flush()
    return parts or [Part(html="…", plain="…")]


def format_text(text: str) -> list[Part]:
    """A short bot text (welcome, help, notices) as one message: escaped HTML and its plain twin."""
    return [Part(html=html.escape(text, quote=False), plain=text)]


def format_sources(sources: list[dict] | None, *, limit: int = MESSAGE_MAX_CHARS) -> list[Part]:
    """The sources of an answer as their own message(s) (the "Sources" button and /sources).

    Returns:
        Parts of at most ``limit`` characters; a single "no sources" part when there are none.
    """
    if not sources:
        text = "My last answer did not use any document."
        return [Part(html=text, plain=text)]
    lines = [source_line(i, s) for i, s in enumerate(sources, start=1)]
    parts: list[Part] = []
    plain, html_lines = ["Sources:"], ["<b>Sources:</b>"]
    for p_line, h_line in lines:
        if utf16_len("\n".join(html_lines + [h_line])) > limit:
            parts.append(Part(html="\n".join(html_lines), plain="\n".join(plain)))
            plain, html_lines = [], []
        plain.append(p_line)
        html_lines.append(h_line)
    parts.append(Part(html="\n".join(html_lines), plain="\n".join(plain)))
    return parts
