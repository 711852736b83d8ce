"""python manage.py eval_retrieval --beir DIR [--split train] | --qa FILE --company SLUG [--json]"""
from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from rag.evaluation import Progress, beir_evaluate, beir_ingest, load_beir, qa_evaluate, throwaway_slug
from saas_bot.errors import ServiceError
from tenants.models import Company
from tenants.selectors import company_get_by_slug
from tenants.services import company_create


class _Bars(Progress):
    def __init__(self, enabled: bool) -> None:
        self.enabled, self.bar = enabled, None
        super().__init__(stage=self._stage, step=self._step)

    def _stage(self, name: str, total: int) -> None:
        if self.bar:
            self.bar.close()
        self.bar = tqdm(total=total, desc=name, disable=not self.enabled)

    def _step(self, n: int) -> None:
        if self.bar:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar:
            self.bar.close()


class Command(BaseCommand):
    help = "Measure retrieval through the product's ingestion and retriever (BEIR folder or QA JSONL)."

    def add_arguments(self, parser):
        parser.add_argument("--beir", help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv).")
        parser.add_argument("--split", default="train", choices=["train", "test", "dev"])
        parser.add_argument("--k", type=int, default=10)
        parser.add_argument("--keep", action="store_true", help="Keep the throwaway BEIR company.")
        parser.add_argument("--embedding-model", help="The throwaway BEIR company's embedding model "
                                                      "(default: EMBEDDING_DEFAULT_MODEL).")
        parser.add_argument("--qa", help="Question set (JSONL: question, expected, [section]).")
        parser.add_argument("--company", help="Company slug for --qa.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object on the last line.")

    def handle(self, *args, **opts):
        bars = _Bars(enabled=True)  # bars go to stderr, the JSON line to stdout
        if bool(opts["beir"]) == bool(opts["qa"]):
            raise CommandError("Give either --beir DIR or --qa FILE --company SLUG.")
        if opts["embedding_model"]:
            from rag.embeddings import LOCAL_MODELS

            if opts["embedding_model"] not in LOCAL_MODELS:
                raise CommandError(f"Unknown embedding model {opts['embedding_model']!r}; choose one of "
                                   f"{', '.join(LOCAL_MODELS)}.")
        if opts["beir"]:
            directory = Path(opts["beir"])
            try:
                corpus, queries, qrels = load_beir(directory, opts["split"])
            except FileNotFoundError as exc:
                raise CommandError(f"Not a BEIR folder: {exc}") from exc
            company = company_create(name=f"BEIR {directory.name}", slug=throwaway_slug())
            try:
                if opts["embedding_model"]:
                    from rag.knowledge_base import knowledge_base_model_set

                    knowledge_base_model_set(company=company, model=opts["embedding_model"], background=False)
                doc_ids = beir_ingest(company=company, corpus=corpus, progress=bars)
                result = beir_evaluate(company=company, queries=queries, qrels=qrels, doc_ids=doc_ids,
                                       k=opts["k"], progress=bars)
                from rag.knowledge_base import knowledge_base_model

                result.update(dataset=directory.name, split=opts["split"], documents=len(corpus),
                              embedding_model=knowledge_base_model(company.id))
            finally:
                bars.close()
                if not opts["keep"]:
                    _company_purge(company)
        else:
            if not opts["company"]:
                raise CommandError("--qa needs --company SLUG.")
            try:
                company = company_get_by_slug(slug=opts["company"])
            except ServiceError as exc:
                raise CommandError(exc.message) from exc
            rows = read_question_set(Path(opts["qa"]))
            result = qa_evaluate(company=company, rows=rows, progress=bars)
            bars.close()
            result.update(questions=len(rows), company=company.slug)
        write_result(self.stdout, result, as_json=opts["json"])


def write_result(stdout, result: dict, *, as_json: bool) -> None:
    """An evaluation's figures: one JSON object on one line, or one aligned ``key  value`` line each."""
    if as_json:
        stdout.write(json.dumps(result))
        return
    width = max(len(k) for k in result)
    for key, value in result.items():
        stdout.write(f"{key:<{width}}  {value}")


def read_question_set(path: Path) -> list[dict]:
    """Read a JSONL question set; every line must be an object with a non-empty "question".

    Raises:
        CommandError: the file is missing or a line is not valid (the line number is given).
    """
    if not path.is_file():
        raise CommandError(f"{path}: not a file")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise CommandError(f"{path}:{number}: not JSON ({exc})") from exc
        if not isinstance(row, dict) or not isinstance(row.get("question"), str) or not row["question"].strip():
            raise CommandError(f'{path}:{number}: each line needs a "question" string')
        if not isinstance(row.get("expected", []), list):
            raise CommandError(f'{path}:{number}: "expected" must be a list of file names')
        rows.append(row)
    if not rows:
        raise CommandError(f"{path}: no questions")
    return rows


def _company_purge(company: Company) -> None:
    """Delete an evaluation company with its documents, chunks and files."""
    from rag.models import Document
    from rag.services import document_delete

    for document_id in Document.objects.for_company(company).values_list("id", flat=True):
        document_delete(company=company, document_id=document_id)
    company.delete()
