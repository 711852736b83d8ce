"""python manage.py eval_answers --qa FILE --company SLUG [--details FILE] [--json]

Answers every question of an answer-level question set as a Telegram message would be answered
(without Telegram) and prints the figures of :func:`rag.answer_evaluation.summarise`.
docs/answers.md explains the fields and holds the figures measured.
"""
from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from rag.answer_evaluation import answers_evaluate, as_dict, summarise
from rag.management.commands.eval_retrieval import read_question_set, write_result
from saas_bot.errors import ServiceError
from tenants.selectors import company_get_by_slug


class Command(BaseCommand):
    help = "Measure the answers end users read (accuracy, refusals both ways, markup, truncation, latency)."

    def add_arguments(self, parser):
        parser.add_argument("--qa", required=True,
                            help="Question set (JSONL: question, expected, kind, answer_contains).")
        parser.add_argument("--company", required=True, help="Slug of the company whose documents answer.")
        parser.add_argument("--details", help="Write one JSON line per question (answer, sources, verdicts) here.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object on the last line.")

    def handle(self, *args, **opts):
        try:
            company = company_get_by_slug(slug=opts["company"])
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        rows = read_question_set(Path(opts["qa"]))
        for number, row in enumerate(rows, start=1):
            if not isinstance(row.get("answer_contains", []), list):
                raise CommandError(f'{opts["qa"]}: row {number}: "answer_contains" must be a list of strings')
        from rag.answering import answer_question

        # Load the embedding model and the language identifier before the clock starts: latency is per question.
        answer_question(company=company, question="warm up")
        with tqdm(total=len(rows), desc="answers") as bar:
            results = answers_evaluate(company=company, rows=rows, progress=bar.update)
        if opts["details"]:
            with open(opts["details"], "w", encoding="utf-8") as handle:
                for result in results:
                    handle.write(json.dumps(as_dict(result), ensure_ascii=False) + "\n")
        summary = summarise(results)
        summary.update(company=company.slug, qa=str(opts["qa"]))
        write_result(self.stdout, summary, as_json=opts["json"])
