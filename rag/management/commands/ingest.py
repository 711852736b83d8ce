"""python manage.py ingest --company SLUG PATH... : index files or folders for a company."""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from rag.models import Document
from rag.services import document_add, document_change_batch, documents_ingest
from saas_bot.errors import ConfigurationError, ServiceError
from saas_bot.progress import StageProgress
from tenants.selectors import company_get_by_slug


def collect_files(paths: list[str]) -> list[Path]:
    """Files named, and files under folders named (recursively, hidden ones skipped), sorted."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(p for p in sorted(path.rglob("*"))
                         if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
        elif path.is_file():
            found.append(path)
        else:
            raise CommandError(f"{raw}: no such file or folder")
    return found


class Command(BaseCommand):
    help = ("Ingest files (TXT, MD, RST, HTML, PDF, DOCX) or folders into a company's knowledge base. "
            "Every file is tried; the exit status is 1 if any could not be indexed.")

    def add_arguments(self, parser):
        parser.add_argument("--company", required=True, help="Company slug.")
        parser.add_argument("paths", nargs="+", help="Files or folders.")
        parser.add_argument("--quiet", action="store_true", help="No progress display.")
        parser.add_argument("--reindex", action="store_true",
                            help="Index again files whose content is already indexed (after an upgrade).")

    def handle(self, *args, company: str, paths: list[str], quiet: bool, reindex: bool = False, **options):
        try:
            tenant = company_get_by_slug(slug=company)
        except ServiceError as exc:
            raise CommandError(exc.message) from exc
        files = collect_files(paths)
        if not files:
            raise CommandError("No files found.")
        to_index: list[Document] = []
        report: list[tuple[str, str, str]] = []
        # One display for the three stages: a bar on a terminal, plain lines in a pipe or log (saas_bot.progress).
        display = StageProgress(enabled=not quiet)
        # The files of one command are one change: one knowledge-base version, live when all are indexed (as
        # an upload of several files through the admin or the API), not a version per file.
        with document_change_batch(company=tenant, origin="upload") as batch:
            for number, path in enumerate(files, start=1):
                display.update("Reading files", number - 1, len(files), "file")
                try:
                    document, created = document_add(company=tenant, file_name=path.name, data=path.read_bytes(),
                                                     schedule=False, batch=batch)
                except ServiceError as exc:
                    report.append((path.name, "refused", exc.message))
                    continue
                if created or reindex or document.status != Document.Status.READY:
                    to_index.append(document)
                else:
                    report.append((path.name, "skipped", f"same content as '{document.file_name}', already indexed"))
        display.update("Reading files", len(files), len(files), "file")

        def progress(stage: str, done: int, total: int) -> None:
            if stage == "extract":
                display.update("Extracting", done, total, "document")
            else:
                display.update("Embedding chunks", done, total, "chunk")

        try:
            results = documents_ingest(company=tenant, documents=to_index, progress=progress) if to_index else []
        except ConfigurationError as exc:
            # The deployment, not the files: said once, the files stay stored and pending.
            raise CommandError(f"{exc.message} [{exc.code}] {exc.operator_hint}".rstrip()) from exc
        finally:
            display.close()
        by_id = {d.id: d for d in results}
        for document in to_index:
            d = by_id[document.id]
            detail = (f"{d.chunk_count} chunks, {d.token_count} tokens" if d.status == Document.Status.READY
                      else f"[{d.error_code}] {d.error}" if d.error_code else d.error)
            report.append((d.file_name, d.status, detail))
        width = max(len(r[0]) for r in report)
        for name, status, detail in report:
            self.stdout.write(f"{name:<{width}}  {status:<8}  {detail}")
        ready = sum(1 for r in report if r[1] == Document.Status.READY)
        failed = sum(1 for r in report if r[1] in (Document.Status.FAILED, "refused"))
        summary = f"{ready} indexed, {failed} failed, {sum(1 for r in report if r[1] == 'skipped')} skipped."
        if failed:
            # Every file was tried; the exit status tells scripts that some did not make it.
            self.stdout.write(self.style.WARNING(summary))
            raise CommandError(f"{failed} file(s) could not be indexed (reasons above).")
        self.stdout.write(self.style.SUCCESS(summary))
