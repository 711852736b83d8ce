"""Golden questions: questions a company's bot must always answer right, checked before a new
knowledge-base version goes live (rag/versions.py; docs/knowledge-base.md "Golden questions").

A golden question has the fields of the evaluation sets (``expected`` documents, ``answer_contains``, or
must refuse) and is scored by rag.answer_evaluation, the scorer of ``manage.py eval_answers``.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from django.db import transaction

from rag.models import Document, GoldenQuestion, KnowledgeBase
from saas_bot.errors import NotFound, ValidationFailed


@dataclass
class GoldenReport:
    """The golden check of a candidate: ``results`` one dict per question (id, question, passed,
    passed_live, refused, answer, sources, cited_expected, contains_expected); ``ok`` whether it may go
    live and, if not, ``reason``."""

    results: list[dict]
    passed: int
    total: int
    ok: bool
    reason: str


def golden_passed(question: GoldenQuestion, result) -> bool:
    """Whether an answer scored by ``rag.answer_evaluation.score_row`` passes ``question``: a must-refuse
    question passes when refused; otherwise the answer must not be refused, cite one of ``expected`` (if
    any) and contain one of ``answer_contains`` (if any)."""
    if question.must_refuse:
        return result.refused
    if result.refused:
        return False
    return (not question.expected or result.cited_expected) and (
        not question.answer_contains or result.contains_expected)


class _Rollback(Exception):
    pass


def _answer_all(company_id: int, questions: list[GoldenQuestion], revisions: dict[int, int] | None,
                apply: Callable[[int, dict[int, int]], object]) -> list:
    """Answer ``questions`` (rag.answer_evaluation.answers_evaluate) against ``revisions`` (None: the live
    chunks, else made live by ``apply(company_id, revisions)``), in a transaction that is rolled back:
    nothing the answers write stays, and other connections never see the candidate's chunks."""
    from rag.answer_evaluation import answers_evaluate
    from tenants.models import Company

    company = Company.objects.get(id=company_id)
    box: list = []
    try:
        with transaction.atomic():
            if revisions is not None:
                apply(company_id, revisions)
            box.extend(answers_evaluate(company=company, rows=[q.as_row() for q in questions]))
            raise _Rollback
    except _Rollback:
        pass
    return box


def golden_check(*, company_id: int, revisions: dict[int, int], apply: Callable[[int, dict[int, int]], object],
                 questions: list[GoldenQuestion] | None = None) -> GoldenReport:
    """Answer the company's golden questions against the candidate ``revisions`` (made live for the check by
    ``apply``: rag.versions' own switch of chunks, rolled back after) and the live version, and decide whether
    the candidate may go live (rag/versions.py, module docstring, step 3)."""
    questions = questions if questions is not None else list(GoldenQuestion.objects.filter(company_id=company_id))
    if not questions:
        return GoldenReport(results=[], passed=0, total=0, ok=True, reason="")
    live = _answer_all(company_id, questions, None, apply)
    new = _answer_all(company_id, questions, revisions, apply)
    results = []
    for question, before, after in zip(questions, live, new):
        results.append({"id": question.id, "question": question.question, "passed": golden_passed(question, after),
                        "passed_live": golden_passed(question, before), "refused": after.refused,
                        "answer": after.answer[:2000], "sources": [s.get("document") for s in after.sources],
                        "cited_expected": after.cited_expected, "contains_expected": after.contains_expected})
    passed = sum(r["passed"] for r in results)
    threshold = KnowledgeBase.objects.filter(company_id=company_id).values_list("golden_threshold", flat=True).first()
    if threshold is None:
        regressions = [r for r in results if r["passed_live"] and not r["passed"]]
        ok = not regressions
        reason = "" if ok else (f"{len(regressions)} golden question(s) that pass on the live version fail: "
                                + "; ".join(r["question"][:80] for r in regressions[:5]))
    else:
        ok = passed >= threshold * len(results) - 1e-9
        reason = "" if ok else f"{passed} of {len(results)} golden questions pass; the threshold is {threshold:.0%}."
    return GoldenReport(results=results, passed=passed, total=len(results), ok=ok, reason=reason)


def _check_expected_names(company, names: list[str]) -> None:
    """Refuse expected document names the company has no document of: an answer is scored by the file names
    of its sources (rag.answer_evaluation.score_row, exact match), so such a question could never pass.
    Names already on a question are not checked again (their document may since be deleted: that is what
    the question is there to catch)."""
    if not names:
        return
    known = set(Document.objects.filter(company_id=company.id).values_list("file_name", flat=True))
    unknown = [name for name in names if name not in known]
    if unknown:
        hints = []
        for name in unknown[:3]:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6) or [
                k for k in known if k.lower() == name.lower()]
            if close:
                hints.append(f"'{name}': did you mean '{close[0]}'?")
        raise ValidationFailed(
            code="golden_question_invalid",
            message="Expected documents are file names of this knowledge base's documents; none is named "
                    + ", ".join(f"'{n}'" for n in unknown[:5]) + "." + (" " + " ".join(hints) if hints else ""))


def golden_question_save(*, company, question: str, expected: list[str] | None = None,
                         answer_contains: list[str] | None = None, must_refuse: bool = False,
                         golden: GoldenQuestion | None = None) -> GoldenQuestion:
    """Create (or update ``golden``) a golden question of ``company``.

    Raises:
        ValidationFailed(code="golden_question_invalid"): no question, or none of expected /
            answer_contains / must_refuse, or must_refuse with expected or answer_contains, or an expected
            name (new on this question) that is no document's file name in the company.
    """
    question = (question or "").strip()
    expected = [str(e).strip() for e in (expected or []) if str(e).strip()]
    answer_contains = [str(a).strip() for a in (answer_contains or []) if str(a).strip()]
    if not question:
        raise ValidationFailed(code="golden_question_invalid", message="Write the question.")
    if must_refuse and (expected or answer_contains):
        raise ValidationFailed(code="golden_question_invalid",
                               message="A must-refuse question has no expected documents or answer text.")
    if not (must_refuse or expected or answer_contains):
        raise ValidationFailed(code="golden_question_invalid",
                               message="Say what a right answer is: expected documents, text it contains, "
                                       "or that it must refuse.")
    golden = golden or GoldenQuestion(company_id=company.id)
    if golden.company_id != company.id:
        raise NotFound(code="golden_question_not_found", message="Golden question not found.")
    _check_expected_names(company, [e for e in expected if e not in (golden.expected or [])])
    golden.question, golden.expected, golden.answer_contains = question[:2000], expected, answer_contains
    golden.must_refuse = bool(must_refuse)
    golden.save()
    return golden
