"""Source sync cost: the first crawl of a 500-article local site, a re-sync of the unchanged site, and a
re-sync after 5 articles changed (issue 17 target: the unchanged re-sync transfers <= 5 % of the first
crawl's bytes and finishes in <= 60 s).

    .venv/bin/python bench/sync_sources.py [--sections 10] [--pages-per-section 50] [--port 22017]

The site is saas_bot/testing/local_site.py (generated help-centre pages with a cookie banner, navigation, sidebar and
footer; ETag and Last-Modified; 304s) served on 127.0.0.1 by this process; the sync is
``rag.sources.source_sync`` with the deployment's settings (SOURCE_HOST_CONCURRENCY,
SOURCE_HOST_RATE_PER_SECOND), into a private database that is dropped at the end. "Bytes sent" is what the
site's server wrote to its sockets (status lines, headers and bodies); "bytes received" is the run's own
count of response bodies. The first crawl's time includes indexing the new documents (embedding).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
from _common import log, machine_info, machine_lines, other_load, table, update_docs  # noqa: E402

DB_NAME = "bench_sync_sources"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", type=int, default=10)
    parser.add_argument("--pages-per-section", type=int, default=50)
    parser.add_argument("--port", type=int, default=22017)
    parser.add_argument("--no-docs", action="store_true", help="Print only; leave docs/benchmarks.md alone.")
    args = parser.parse_args()
    _common.django_setup({"DOCUMENT_URL_ALLOW_PRIVATE": "true", "REDIS_URL": "", "CELERY_BROKER_URL": ""})
    info = machine_info()
    load_note = other_load()
    _common.use_private_database(DB_NAME)
    from django.conf import settings
    from django.core.management import call_command

    from saas_bot.testing.local_site import LocalSite
    from rag.models import Source
    from rag.sources import source_create, source_sync
    from tenants.services import company_create

    rows, checks, results_size_kb = [], [], 0.0
    articles = args.sections * args.pages_per_section
    try:
        log("migrating the private database")
        call_command("migrate", verbosity=0)
        company = company_create(name="Bench sync", slug="bench-sync")
        with LocalSite(sections=args.sections, pages_per_section=args.pages_per_section, paragraphs=6,
                       port=args.port, slow_seconds=0.0) as site:
            source = source_create(company=company, name="Local help centre", url=site.url("/"),
                                   kind=Source.Kind.WEBSITE, max_pages=articles + 100, max_depth=2,
                                   exclude_patterns="/loop/*\n/slow.html")
            results = {}
            for label, prepare in (("first crawl", None), ("re-sync, unchanged", None),
                                   ("re-sync, 5 articles changed",
                                    lambda: [site.change(p) for p in sorted(site.pages)[::articles // 5][:5]])):
                if prepare:
                    prepare()
                site.reset_counters()
                log(f"{label}: syncing")
                started = time.perf_counter()
                run = source_sync(company=company, source_id=source.id)
                seconds = time.perf_counter() - started
                requests = sum(site.requests.values())
                results[label] = (site.bytes_sent, seconds)
                log(f"{label}: {run.status} in {seconds:.1f} s, {site.bytes_sent:,} bytes sent, {requests} requests")
                rows.append([label, run.status, f"{seconds:.1f}", requests, f"{site.bytes_sent:,}",
                             f"{run.bytes_received:,}", run.added, run.changed, run.removed, run.failed,
                             run.unchanged])
        first_bytes, _ = results["first crawl"]
        results_size_kb = first_bytes / max(1, rows[0][3]) / 1000
        again_bytes, again_seconds = results["re-sync, unchanged"]
        share = again_bytes / first_bytes
        checks = [f"unchanged re-sync transferred {share:.2%} of the first crawl's bytes (target <= 5 %): "
                  f"{'met' if share <= 0.05 else 'MISSED'}",
                  f"unchanged re-sync took {again_seconds:.1f} s (target <= 60 s): "
                  f"{'met' if again_seconds <= 60 else 'MISSED'}"]
    finally:
        _common.drop_private_database(DB_NAME)
    headers = ["run", "status", "seconds", "requests", "bytes sent", "bytes received", "added", "changed",
               "removed", "failed", "unchanged"]
    body = (f"## Source sync (`bench/sync_sources.py`, issue 17)\n\n"
            f"{machine_lines(info)}Other processes at start: {load_note}.\n\n"
            f"A local site of {articles} articles in {args.sections} sections (plus the index and section pages; "
            f"generated help-centre pages of about {results_size_kb:.1f} KB with banner, navigation, sidebar and footer), "
            "crawled "
            f"as a website source (depth 2) with SOURCE_HOST_CONCURRENCY={settings.SOURCE_HOST_CONCURRENCY} and "
            f"SOURCE_HOST_RATE_PER_SECOND={settings.SOURCE_HOST_RATE_PER_SECOND:g}. Bytes sent: the site's "
            "status lines, headers and bodies; bytes received: response bodies as the run counted them. The "
            "first crawl includes indexing (embedding) the new documents; a re-sync sends If-None-Match / "
            "If-Modified-Since and gets 304s.\n\n"
            + table(headers, rows, align="llrrrrrrrrr") + "\n" + "\n".join(f"- {c}" for c in checks) + "\n")
    print(body)
    if not args.no_docs:
        update_docs("sync_sources", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
