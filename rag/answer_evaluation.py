"""Answer-level evaluation: what an end user reads, scored against a question set.

Each row of a question set (``bench/data/README.md`` has the format) is answered by the same code a
Telegram message goes through (:func:`rag.answering.answer_question`, then
:func:`bots.formatting.format_answer` into Telegram messages), and the answer is scored:

- correct: not refused, the answer text contains one of the row's ``answer_contains`` strings
  (case-insensitive, whitespace-normalised) and a cited source is one of the row's ``expected`` files;
- refused: the pipeline said "I don't know" (right for rows with ``expected == []``);
- markup: the answer text contains source markup a reader sees as noise (:data:`MARKUP_PATTERNS`);
- truncated: the answer ends mid-sentence (:func:`is_truncated`);
- over_limit: a Telegram message of the answer is longer than 4,096 UTF-16 code units.

:func:`summarise` turns the rows into the figures ``manage.py eval_answers`` prints (docs/answers.md).
"""
from __future__ import annotations

import re
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

# Source markup that must never reach a reader. Each entry: (name, compiled pattern). The names are
# the kinds the suite tests one by one (rag/tests/test_answers.py).
MARKUP_PATTERNS: list[tuple[str, re.Pattern]] = [
    ("zulip_macro", re.compile(r"\{(?:start_tabs|end_tabs|tab\|[^}\n]*|settings_tab\|[^}\n]*|relative\|[^}\n]*)\}")),
    ("include", re.compile(r"\{!\s*[^}\n]+?!\}")),
    ("jinja", re.compile(r"\{%-?\s.*?%\}|\{\{-?\s?[^{}\n]+\}\}")),
    ("hugo_shortcode", re.compile(r"\{\{[<%].*?[>%]\}\}")),
    ("mkdocs_snippet", re.compile(r"^\s*-{2}8<-{2}", re.M)),
    ("admonition", re.compile(r"^\s*(?::::+\s*\w*|!!!\s+\w+)", re.M)),
    ("markdown_emphasis", re.compile(r"(?<![\w*@])(\*\*|__)(?=\S)[^\n]+?(?<=\S)\1(?![\w*])")),
    ("markdown_link", re.compile(r"\[[^\]\n]+\]\([^)\s]+\)")),
    ("markdown_reference_link", re.compile(r"\[[^\[\]\n]+\]\[[^\[\]\n]*\]|^ {0,3}\[[^\[\]\n]+\]:\s+\S", re.M)),
    ("markdown_heading", re.compile(r"^\s{0,3}#{1,6}\s+\S", re.M)),
    ("code_backquote", re.compile(r"`[^`\n]+`")),
    ("html_tag", re.compile(r"</?(?:a|b|i|em|strong|div|span|p|br|img|code|pre|ul|ol|li|table|tr|td|th|kbd)\b[^>\n]*>",
                            re.I)),
    ("pipe_table", re.compile(r"^\s*\|.*\|\s*$", re.M)),
    ("rst_table", re.compile(r"^\s*={3,}(?:\s+={3,})+\s*$|^\s*\+(?:-{3,}\+)+\s*$", re.M)),
    ("rst_role", re.compile(r":[a-z][\w.+-]*:`")),
    ("rst_directive", re.compile(r"^\s*\.\.\s+(?:_[^:\n]+:|[\w-]+::|\|)", re.M)),
]
# Zulip's own message syntax is text its help centre tells users to type (``@**Name**`` mentions,
# ``#**channel**`` links): an instruction, not markup. It is removed before the check.
_USER_SYNTAX = re.compile(r"[@#]_?\*\*[^*\n]+\*\*")

# A line ending with ":" announces something that is missing: not an end.
SENTENCE_END = ".!?…;)\"'»”’。！？"
_LIST_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-•*–])\s+")


def markup_leaks(text: str) -> list[str]:
    """Names of the :data:`MARKUP_PATTERNS` found in ``text`` (empty list = clean)."""
    text = _USER_SYNTAX.sub(" ", text)
    return [name for name, pattern in MARKUP_PATTERNS if pattern.search(text)]


def is_truncated(text: str) -> bool:
    """True when ``text`` stops mid-sentence.

    The last line must end a sentence (``SENTENCE_END``; a closing ":" announces something missing),
    unless it is a list item or a short line of at most 8 words without a closing ":" (a label, a menu
    path), which read as complete without punctuation. An ellipsis added by cutting ("…" after a word)
    counts as truncated.
    """
    stripped = text.rstrip()
    if not stripped:
        return False
    if stripped.endswith(("...", " …")) or re.search(r"\w…$", stripped):
        return True
    last = stripped.splitlines()[-1].strip()
    if last[-1] in SENTENCE_END:
        return False
    if last.endswith(":"):
        return True
    if _LIST_ITEM.match(last) or len(last.split()) <= 8:
        return False
    return True


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


@dataclass
class RowResult:
    """One question's outcome (``--details`` writes these as JSON lines)."""

    id: str
    question: str
    kind: str
    answerable: bool
    refused: bool
    correct: bool
    cited_expected: bool
    contains_expected: bool
    markup: list[str]
    truncated: bool
    over_limit: bool
    latency_ms: float
    answer: str
    sources: list[dict] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)


def score_row(row: dict, *, text: str, refused: bool, sources: list[dict], message_lengths: list[int],
              latency_ms: float, limit: int = 4096) -> RowResult:
    """Score one answered row.

    Args:
        row: the question-set row (question, expected, kind, answer_contains).
        text: the answer text the user reads (without the sources block).
        sources: the cited sources (dicts with ``document``, the file name).
        message_lengths: each Telegram message of the answer, in UTF-16 code units.
        latency_ms: time to answer, milliseconds.
    """
    expected = list(row.get("expected") or [])
    answerable = bool(expected)
    wanted = [_normalise(s) for s in row.get("answer_contains") or []]
    body = _normalise(text)
    contains = bool(wanted) and any(w in body for w in wanted)
    cited = any(s.get("document") in expected for s in sources)
    return RowResult(
        id=str(row.get("id", "")), question=row["question"], kind=row.get("kind", ""), answerable=answerable,
        refused=refused, correct=answerable and not refused and contains and cited, cited_expected=cited,
        contains_expected=contains, markup=[] if refused else markup_leaks(text),
        truncated=False if refused else is_truncated(text),
        over_limit=any(n > limit for n in message_lengths), latency_ms=round(latency_ms, 1), answer=text,
        sources=sources, expected=expected)


def _share(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 1)


def summarise(results: list[RowResult]) -> dict:
    """The figures of a run (keys as printed by ``eval_answers --json``; None where a set has no such rows).

    - answer_accuracy: correct / answerable rows
    - refusal_rate: refused / unanswerable rows; false_refusal_rate: refused / answerable rows
    - markup_leak_rate, truncated_rate, over_limit_rate: over the answers given (not refused)
    - non_english_accuracy: correct / answerable rows of kind "non-english"
    - latency_ms_p50 / p95: per question, milliseconds
    """
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    given = [r for r in results if not r.refused]
    non_english = [r for r in answerable if r.kind == "non-english"]
    latencies = [r.latency_ms for r in results]
    return {
        "questions": len(results),
        "answer_accuracy": _share([r.correct for r in answerable]),
        "refusal_rate": _share([r.refused for r in unanswerable]),
        "false_refusal_rate": _share([r.refused for r in answerable]),
        "markup_leak_rate": _share([bool(r.markup) for r in given]),
        "truncated_rate": _share([r.truncated for r in given]),
        "over_limit_rate": _share([r.over_limit for r in given]),
        "non_english_accuracy": _share([r.correct for r in non_english]),
        "latency_ms_p50": _percentile(latencies, 50),
        "latency_ms_p95": _percentile(latencies, 95),
    }


def answers_evaluate(*, company, rows: list[dict], progress: Callable[[int], None] | None = None) -> list[RowResult]:
    """Answer every row as the Telegram path does and score it.

    Args:
        company: the Company whose documents answer.
        rows: question-set rows (see the module docstring).
        progress: called with 1 after each row.

    Returns:
        One RowResult per row, in order.
    """
    from bots.formatting import format_answer, utf16_len
    from rag.answering import answer_question

    results = []
    for row in rows:
        started = time.perf_counter()
        answer = answer_question(company=company, question=row["question"])
        elapsed = (time.perf_counter() - started) * 1000
        sources = answer.sources_as_dicts()
        parts = format_answer(answer.text, None if answer.refused else sources)
        results.append(score_row(row, text=answer.text, refused=answer.refused, sources=sources,
                                 message_lengths=[utf16_len(p.html) for p in parts], latency_ms=elapsed))
        if progress:
            progress(1)
    return results


def as_dict(result: RowResult) -> dict:
    """A RowResult as a JSON-ready dict."""
    return asdict(result)
