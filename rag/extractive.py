"""Extractive answers (no chat model): the passage of the best section that answers the question.

An answer is built from the section of the best retrieved chunk, not from the chunk alone:

1. :func:`section_text` joins the chunks of that section (same document, section and page, consecutive
   ordinals around the best chunk) and removes the overlap the splitter repeated between them.
2. The section is cut into units: its lines (paragraphs, list items, steps), and a line longer than
   half the answer budget into sentences (pysbd, Golden Rules segmentation, 22 languages).
3. A short section (at most ``RAG_ANSWER_MAX_CHARS`` characters) is the answer, whole. In a longer
   one, the window of consecutive units within the budget that covers most of the question's terms
   (stemmed by PostgreSQL, as the lexical retriever does) wins; ties go to the earlier window. A list
   keeps its lead-in line ("To add a bot:"), and a lead-in ending with ":" keeps its list items, so
   steps are never orphaned.

Units are whole lines or sentences, so an answer never stops mid-sentence; lines keep their own
numbering ("1. Go to Settings"). docs/answers.md has the figures.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.db import connection

_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-•*–])\s+")
# How far from the best chunk a section is read, in chunks each way (a 200-token chunk is ~900 characters).
SECTION_NEIGHBOURS = 4


@dataclass
class Unit:
    """A line of a section, or a sentence of a long line."""

    text: str
    line: int
    is_list_item: bool
    starts_line: bool


def merge_overlap(previous: str, following: str, *, min_overlap: int = 4) -> str:
    """``previous`` + ``following`` without the text the splitter repeated at their seam.

    The splitter's overlap is whole lines or sentences from the end of one chunk at the start of the next:
    the longest tail of ``previous`` that starts a line or a sentence, is at least ``min_overlap``
    characters long and that ``following`` starts with is written once. Without one, the chunks are
    joined as separate lines.
    """
    head = following.lstrip()
    starts = [0] + [m.end() for m in re.finditer(r"(?:\n|(?<=[.!?:])[ \t])\s*", previous)]
    for index in starts:  # the earliest start is the longest overlap
        tail = previous[index:].rstrip()
        if len(tail) >= min_overlap and head.startswith(tail):
            return previous[:index] + head
    return previous.rstrip() + "\n" + head


def section_text(chunk_id: int) -> str:
    """The text of the best chunk's section: the consecutive chunks of the same document and section around
    ``chunk_id`` (``SECTION_NEIGHBOURS`` each way), overlap removed. A named section runs on across PDF pages
    (its heading continues); in a PDF without headings each page is its own section."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.ordinal, c.text, c.id = b.id FROM rag_chunk c JOIN rag_chunk b ON b.id = %s
            WHERE c.document_id = b.document_id AND c.revision = b.revision AND c.section = b.section
              AND (b.section <> '' OR c.page IS NOT DISTINCT FROM b.page)
              AND c.ordinal BETWEEN b.ordinal - %s AND b.ordinal + %s
            ORDER BY c.ordinal
            """,
            [chunk_id, SECTION_NEIGHBOURS, SECTION_NEIGHBOURS],
        )
        rows = cursor.fetchall()
    if not rows:
        return ""
    best = next(i for i, row in enumerate(rows) if row[2])
    # Only the run of consecutive ordinals that holds the best chunk (a section heading may repeat).
    start = best
    while start > 0 and rows[start - 1][0] == rows[start][0] - 1:
        start -= 1
    end = best
    while end + 1 < len(rows) and rows[end + 1][0] == rows[end][0] + 1:
        end += 1
    text = rows[start][1]
    for _, following, _ in rows[start + 1:end + 1]:
        text = merge_overlap(text, following)
    return text


def next_section_chunk(chunk_id: int) -> tuple[int, str] | None:
    """(id, section) of the first chunk of the section that follows ``chunk_id``'s section in its document
    (None at the end)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.id, c.section FROM rag_chunk c JOIN rag_chunk b ON b.id = %s
            WHERE c.document_id = b.document_id AND c.revision = b.revision AND c.ordinal > b.ordinal
              AND (c.section <> b.section OR (b.section = '' AND c.page IS DISTINCT FROM b.page))
            ORDER BY c.ordinal LIMIT 1
            """,
            [chunk_id],
        )
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


# A passage that announces what follows ("the instructions below", "as follows", "To do this:").
_FORWARD_REFERENCE = re.compile(r"(?:\bbelow\b|\bas follows\b|\bthe following\b|:)\s*$|\binstructions below\b", re.I)


@lru_cache(maxsize=8)
def _segmenter(language: str):
    import pysbd

    try:
        return pysbd.Segmenter(language=language, clean=False)
    except ValueError:
        return pysbd.Segmenter(language="en", clean=False)


def units_of(text: str, *, long_line: int, language: str = "en") -> list[Unit]:
    """Cut ``text`` into lines, and lines longer than ``long_line`` characters into sentences."""
    units: list[Unit] = []
    for number, line in enumerate(l.strip() for l in text.splitlines()):
        if not line:
            continue
        is_item = bool(_LIST_ITEM.match(line))
        if len(line) <= long_line:
            units.append(Unit(line, number, is_item, True))
            continue
        sentences = [s.strip() for s in _segmenter(language).segment(line) if s.strip()]
        for i, sentence in enumerate(sentences or [line]):
            units.append(Unit(sentence, number, is_item and i == 0, i == 0))
    return units


def _unit_terms(units: list[Unit]) -> list[set[str]]:
    """Each unit's lexemes, stemmed by PostgreSQL with ``RAG_TEXT_SEARCH_CONFIG`` (one round trip)."""
    if not units:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tsvector_to_array(to_tsvector(%s::regconfig, t)) FROM unnest(%s::text[]) WITH ORDINALITY "
            "AS u(t, i) ORDER BY i",
            [settings.RAG_TEXT_SEARCH_CONFIG, [u.text for u in units]])
        return [set(row[0]) for row in cursor.fetchall()]


def render(units: list[Unit]) -> str:
    """Units back to text: sentences of one line joined by a space, lines by a newline."""
    out: list[str] = []
    for unit in units:
        if out and not unit.starts_line:
            out[-1] += " " + unit.text
        else:
            out.append(unit.text)
    return "\n".join(out)


def _size(units: list[Unit]) -> int:
    return len(render(units))


# A window that cuts a list or leaves a lead-in without its list loses this much (less than one question term).
BROKEN_LIST_PENALTY = 0.5


def _broken(units: list[Unit], start: int, end: int) -> float:
    penalty = 0.0
    if end < len(units) and units[end].is_list_item and (units[end - 1].is_list_item or
                                                          units[end - 1].text.rstrip().endswith(":")):
        penalty += BROKEN_LIST_PENALTY
    if start > 0 and units[start].is_list_item and units[start - 1].is_list_item:
        penalty += BROKEN_LIST_PENALTY
    return penalty


def best_window(units: list[Unit], terms: list[set[str]], weights: dict[str, float], budget: int) -> tuple[int, int]:
    """[start, end) of the consecutive units within ``budget`` characters covering most question-term weight.

    A window that cuts a list, or ends with a lead-in whose list it leaves out, loses ``BROKEN_LIST_PENALTY``.
    Ties: the window that starts earlier (a section's first lines say what it is about).
    """
    best, best_score = (0, 1), -1.0
    for start in range(len(units)):
        covered: set[str] = set()
        end = start
        while end < len(units) and _size(units[start:end + 1]) <= budget:
            covered |= terms[end] & weights.keys()
            end += 1
        if end == start:  # one sentence longer than the budget: it goes alone, whole
            end = start + 1
            covered = terms[start] & weights.keys()
        score = sum(weights[t] for t in covered) - _broken(units, start, end)
        if score > best_score + 1e-9:
            best, best_score = (start, end), score
    return best


def _keep_lists_whole(units: list[Unit], start: int, end: int, budget: int) -> tuple[int, int]:
    # A list item first: take its lead-in line (the non-list unit just before the list).
    if units[start].is_list_item:
        lead = start
        while lead > 0 and units[lead - 1].is_list_item:
            lead -= 1
        if lead > 0 and not units[lead - 1].is_list_item:
            lead -= 1
        while lead < start and _size(units[lead:end]) > budget:
            end -= 1 if end - 1 > start else 0
            if _size(units[lead:end]) > budget:
                lead += 1
        start = lead
    # A lead-in at the end ("To add a bot:"): take the list that follows, as far as it fits; else drop it.
    while end < len(units) and units[end - 1].text.rstrip().endswith(":") and end - start > 0:
        grown = end
        while grown < len(units) and units[grown].is_list_item and _size(units[start:grown + 1]) <= budget:
            grown += 1
        if grown == end:
            end -= 1
            if end <= start:
                end = start + 1
                break
        else:
            end = grown
            break
    # A lead-in that ends the section ("Linux:" before the next heading) announces nothing here: drop it.
    while end - start > 1 and end == len(units) and units[end - 1].text.rstrip().endswith(":"):
        end -= 1
    return start, end


def extract_answer(section: str, *, question_terms: dict[str, float], budget: int | None = None,
                   language: str = "en") -> str:
    """The passage of ``section`` that answers a question with ``question_terms`` ({lexeme: weight}).

    Args:
        section: the section's text (:func:`section_text`).
        question_terms: the question's lexemes (PostgreSQL-stemmed) and their weights; empty for a
            question in another language than the documents (then the section's opening is taken).
        budget: the answer's maximum length in characters (default ``RAG_ANSWER_MAX_CHARS``); a single
            sentence longer than it is given whole rather than cut.
        language: ISO 639-1 code for sentence boundaries (pysbd; English when unsupported).

    Returns:
        Whole lines and sentences of ``section``, in their order.
    """
    budget = budget or settings.RAG_ANSWER_MAX_CHARS
    section = section.strip()
    if len(section) <= budget:
        lines = section.split("\n")
        # A lead-in that ends the section ("Linux:" before the next heading) announces nothing here.
        while len(lines) > 1 and lines[-1].rstrip().endswith(":"):
            lines.pop()
        return "\n".join(lines).strip()
    units = units_of(section, long_line=budget // 2, language=language)
    if not units:
        return ""
    terms = _unit_terms(units)
    start, end = best_window(units, terms, question_terms, budget)
    start, end = _keep_lists_whole(units, start, end, budget)
    return render(units[start:end])


NAVIGATION_HEADINGS = frozenset({"related articles", "related", "see also", "related topics", "next steps",
                                 "further reading", "learn more", "more information"})


def is_navigation(section: str, text: str) -> bool:
    """True for a chunk that only points elsewhere: a "Related articles" / "See also" section, or a list of
    short items none of which is a sentence (links whose targets the reader cannot follow in Telegram)."""
    if section.strip().casefold().rstrip(":") in NAVIGATION_HEADINGS:
        return True
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return len(lines) >= 2 and all(_LIST_ITEM.match(line) and len(line.split()) <= 6
                                   and not line.rstrip().endswith((".", "?", "!")) for line in lines)


@dataclass
class Passage:
    """An answer's text and the chunks whose sections it quotes (best first)."""

    text: str
    chunk_ids: list[int]


def _other_section(chunk, best) -> bool:
    """``chunk`` is in another section than ``best`` (same document): another heading, or, in a PDF without
    headings, another page (a named section continued on the next page is the same section)."""
    return chunk.section != best.section or (not best.section and chunk.page != best.page)


def compose_answer(chunks: list, *, question_terms: dict[str, float], budget: int | None = None) -> Passage:
    """The extractive answer from retrieved ``chunks`` (rag.retrieval.RetrievedChunk, best first).

    The best chunk that is not navigation (:func:`is_navigation`) gives the section; its passage comes
    from :func:`extract_answer`. A passage that announces what follows ("by following the instructions
    below", a closing ":") gets the next section of its document, as far as it fits. Otherwise, when the
    passage leaves more than a third of the budget free, the passage of the next retrieved section of the
    same document is added under its heading (a how-to's steps often sit in the section after the one
    whose words match best). Returns the text and the chunks quoted, for the citation.
    """
    budget = budget or settings.RAG_ANSWER_MAX_CHARS
    content = [c for c in chunks if not is_navigation(c.section, c.text)] or chunks[:1]
    best = content[0]
    text = extract_answer(section_text(best.chunk_id) or best.text, question_terms=question_terms, budget=budget)
    used = [best.chunk_id]
    # What to add when there is room: the section the passage announces ("the instructions below"), else the
    # next retrieved section of the same document.
    extra: list[tuple[int, str]] = []
    if _FORWARD_REFERENCE.search(text):
        following = next_section_chunk(best.chunk_id)
        if following is not None:
            extra.append(following)
    if not extra:
        for other in content[1:]:
            if other.document_id == best.document_id and _other_section(other, best):
                if other.score >= best.score * settings.RAG_ANSWER_APPEND_MIN_SCORE_RATIO:
                    extra.append((other.chunk_id, other.section))
                break
    free = budget - len(text)
    for chunk_id, section in extra:
        if free <= budget // 3 and not _FORWARD_REFERENCE.search(text):
            break
        heading = section.strip()
        body = section_text(chunk_id)
        if is_navigation(heading, body):
            continue
        room = free - len(heading) - 3
        more = extract_answer(body, question_terms=question_terms, budget=room) if room > 80 else ""
        if more and len(more) <= room and not more.rstrip().endswith(":"):  # not a bare label ("macOS:")
            heading_line = f"{heading}:" if heading and heading[-1] not in ".:?!" else heading
            text = text + "\n\n" + (heading_line + "\n" if heading_line else "") + more
            used.append(chunk_id)
    return Passage(text=text, chunk_ids=used)
