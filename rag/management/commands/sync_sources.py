"""python manage.py sync_sources [--company SLUG] [--source ID] : sync knowledge-base sources now, with progress."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from rag.models import Source, SyncRun
from rag.sources import source_sync
from saas_bot.errors import ServiceError
from saas_bot.progress import StageProgress
from tenants.selectors import company_get_by_slug


class Command(BaseCommand):
    help = ("Sync knowledge-base sources now, in this process (docs/knowledge-base.md): every source, a company's "
            "(--company) or one (--source). Prints each run's summary; the exit status is 1 if a run failed.")

    def add_arguments(self, parser):
        parser.add_argument("--company", help="Company slug (default: every company).")
        parser.add_argument("--source", type=int, help="One source id (of --company, if given).")
        parser.add_argument("--quiet", action="store_true", help="No progress display.")

    def handle(self, *args, company: str | None = None, source: int | None = None, quiet: bool = False, **options):
        found = Source.objects.select_related("company").order_by("company__slug", "name", "id")
        if company:
            try:
                found = found.for_company(company_get_by_slug(slug=company))
            except ServiceError as exc:
                raise CommandError(exc.message) from exc
        if source is not None:
            found = found.filter(id=source)
        sources = list(found)
        if not sources:
            if source is not None:
                raise CommandError("No such source.")
            # Nothing to do is not a failure (a scheduled `sync_sources` on a deployment without sources).
            self.stdout.write("No sources to sync.")
            return
        failed = 0
        for item in sources:
            # One display per run on stderr (the raw stream: OutputWrapper would end every tqdm redraw with a
            # newline): a bar on a terminal, plain lines in a pipe or log (saas_bot.progress).
            with StageProgress(stream=self.stderr._out, enabled=not quiet) as display:
                def progress(run: SyncRun, item=item, display=display) -> None:
                    display.update(f"Syncing {item.name}", run.pages_done, max(run.pages_total, run.pages_done),
                                   "page")

                run = source_sync(company=item.company, source_id=item.id, progress=progress)
            line = (f"{item.company.slug} / {item.name} (source {item.id}, run {run.id}): {run.status}; "
                    f"{run.added} added, {run.changed} changed, {run.removed} removed, {run.failed} failed, "
                    f"{run.unchanged} unchanged; {run.bytes_received:,} bytes received")
            if run.status == SyncRun.Status.FAILED:
                failed += 1
                self.stdout.write(self.style.ERROR(f"{line}\n  {run.error}"))
            else:
                self.stdout.write(line)
            for failure in run.failures[:20]:
                self.stdout.write(f"  failed: {failure['url']}: {failure['message']} ({failure['code']})")
        if failed:
            raise SystemExit(1)
