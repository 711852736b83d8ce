"""python manage.py hnsw_indexes [--min-chunks N] [--dry-run] : build and drop the per-company HNSW indexes now."""
from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from rag.company_hnsw import company_hnsw_index_name, company_hnsw_indexes_reconcile


class Command(BaseCommand):
    help = ("Make the per-company partial HNSW indexes match the companies' sizes now, in this process "
            "(docs/retrieval.md, 'Per-company HNSW indexes'): build one for every company with at least "
            "RAG_COMPANY_HNSW_MIN_CHUNKS live chunks, drop those of deleted companies and of companies below half "
            "of it. Builds run CONCURRENTLY (searches and ingestion go on) and take minutes per 100k chunks.")

    def add_arguments(self, parser):
        parser.add_argument("--min-chunks", type=int, default=None,
                            help=f"threshold for this run (default RAG_COMPANY_HNSW_MIN_CHUNKS, now "
                                 f"{settings.RAG_COMPANY_HNSW_MIN_CHUNKS}; 0 drops every per-company index)")
        parser.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")

    def handle(self, *args, min_chunks: int | None = None, dry_run: bool = False, **options):
        result = company_hnsw_indexes_reconcile(min_chunks=min_chunks, dry_run=dry_run)
        if result.skipped:
            raise CommandError("Another reconcile of the per-company HNSW indexes is running; nothing done.")
        verb = "would build" if dry_run else "built"
        for company_id, seconds in result.created.items():
            self.stdout.write(f"{verb} {company_hnsw_index_name(company_id)}"
                              + ("" if dry_run else f" in {seconds} s"))
        for company_id in result.dropped:
            self.stdout.write(f"{'would drop' if dry_run else 'dropped'} {company_hnsw_index_name(company_id)}")
        self.stdout.write(f"{len(result.kept)} kept, {len(result.created)} {verb}, {len(result.dropped)} "
                          f"{'would be dropped' if dry_run else 'dropped'}.")
