"""Knowledge-base sources and their sync runs (issue 17, docs/knowledge-base.md).

A source (``Source``: a website, a sitemap or one URL) is synced by a run (``SyncRun``): its pages are
fetched politely (``rag.crawling``: robots.txt, per-host limits, the pinned transport on every request and
redirect), HTML is reduced to its main content, and each page is compared with what the last run stored:

- ``304 Not Modified`` (the stored ETag / Last-Modified sent back) or the same content checksum (SHA-256 of
  the extracted content): *unchanged*, nothing written but the page's validators;
- new content: *changed*, ``document_replace_content``; a page not seen before: *added*, ``document_add``;
- a stored page the run no longer finds (not linked, not in the sitemap, now excluded by a pattern or by
  robots.txt, or answering 404/410): *removed*, ``document_delete``;
- any other failure (timeout, redirect loop, 5xx, unsupported type): *failed*; its document is kept.

Every document change of a run goes through ``rag.services`` inside one ``document_change_batch(origin=
"sync_run", origin_id=run.id)``, and the run indexes the added and changed documents before the batch ends:
one run is one batch for the listeners (knowledge-base versions). A run that cannot start (the start URL
or the sitemap cannot be read, robots.txt unreachable) fails without removing anything.

This module holds the sources, their runs (start, schedule, execute, finish) and the alerts; the crawl of
one run (discovery, page comparison, document changes) is ``rag.source_crawl``.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from rag import crawling, fetching, services
from rag.models import Collection, Source, SourcePage, SyncRun
from rag.source_crawl import RunProgress, SourceCrawl
from saas_bot.errors import NotFound, ServiceError, ValidationFailed
from saas_bot.tasking import enqueue_on_commit
from tenants.models import Company

logger = logging.getLogger("saas_bot.rag.sources")

SCHEDULE_INTERVALS = {Source.Schedule.DAILY: timedelta(days=1), Source.Schedule.WEEKLY: timedelta(days=7)}
# A run still "running" after this long belongs to a dead worker: a new run may start.
RUN_STALE_AFTER = timedelta(hours=6)
SOURCE_FIELDS = ("name", "kind", "url", "include_patterns", "exclude_patterns", "max_pages", "max_depth",
                 "schedule", "collection", "change_alert_percent")


# --- sources -----------------------------------------------------------------------------------------

def source_get(*, company: Company, source_id: int) -> Source:
    """One source of ``company``; another company's is reported as missing.

    Raises:
        NotFound(code="source_not_found").
    """
    source = Source.objects.for_company(company).filter(id=source_id).first()
    if source is None:
        raise NotFound(code="source_not_found", message="Source not found.")
    return source


def source_clean(company: Company | None, values: dict) -> dict:
    """Checked and normalised fields of a source (``values`` is changed and returned); raises
    ValidationFailed with the field's code (``source_create``), NotFound for another company's collection
    (not checked when ``company`` is None: a form whose choices are scoped already)."""
    url = values.get("url")
    if url is not None:
        url = url.strip() if isinstance(url, str) else url
        fetching.url_check(url)
        values["url"] = url
    kind = values.get("kind")
    if kind is not None and kind not in Source.Kind.values:
        raise ValidationFailed(code="source_kind_invalid", message=f"kind is one of {', '.join(Source.Kind.values)}.")
    schedule = values.get("schedule")
    if schedule is not None and schedule not in Source.Schedule.values:
        raise ValidationFailed(code="source_schedule_invalid",
                               message=f"schedule is one of {', '.join(Source.Schedule.values)}.")
    max_pages = values.get("max_pages")
    if max_pages is not None and not 1 <= max_pages <= settings.SOURCE_MAX_PAGES_LIMIT:
        raise ValidationFailed(code="source_max_pages_invalid",
                               message=f"max_pages is 1 to {settings.SOURCE_MAX_PAGES_LIMIT}.")
    max_depth = values.get("max_depth")
    if max_depth is not None and not 0 <= max_depth <= 20:
        raise ValidationFailed(code="source_max_depth_invalid", message="max_depth is 0 to 20.")
    percent = values.get("change_alert_percent")
    if percent is not None and not 0 <= percent <= 100:
        raise ValidationFailed(code="source_alert_percent_invalid", message="change_alert_percent is 0 to 100.")
    collection = values.get("collection")
    if collection is not None and company is not None and collection.company_id != company.id:
        raise NotFound(code="collection_not_found", message="Collection not found.")
    if "name" in values:
        values["name"] = (values["name"] or "").strip()[:120]
        if not values["name"]:
            raise ValidationFailed(code="source_name_missing", message="Give the source a name.")
    return values


def source_create(*, company: Company, name: str, url: str, kind: str = Source.Kind.WEBSITE,
                  include_patterns: str = "", exclude_patterns: str = "", max_pages: int = 200,
                  max_depth: int = 3, schedule: str = Source.Schedule.MANUAL, collection: Collection | None = None,
                  change_alert_percent: int = 20, sync_now: bool = False) -> Source:
    """Add a source to ``company`` (nothing is fetched until a run; ``sync_now`` queues the first one).

    Raises:
        ValidationFailed(code="document_url_invalid" | "source_kind_invalid" | "source_schedule_invalid" |
            "source_max_pages_invalid" | "source_max_depth_invalid" | "source_alert_percent_invalid" |
            "source_name_missing").
        NotFound(code="collection_not_found"): the collection is another company's.
    """
    values = source_clean(company, {"name": name, "url": url, "kind": kind, "include_patterns": include_patterns,
                                     "exclude_patterns": exclude_patterns, "max_pages": max_pages,
                                     "max_depth": max_depth, "schedule": schedule, "collection": collection,
                                     "change_alert_percent": change_alert_percent})
    with transaction.atomic():
        source = Source.objects.create(company=company, **values)
        if sync_now:
            source_sync_start(company=company, source_id=source.id)
    return source


def source_update(*, company: Company, source_id: int, **changes) -> Source:
    """Change a source's settings (``SOURCE_FIELDS``); the next run uses them. Raises as ``source_create``
    and NotFound(code="source_not_found")."""
    unknown = set(changes) - set(SOURCE_FIELDS)
    if unknown:
        raise ValidationFailed(code="validation_failed", message=f"Unknown fields: {', '.join(sorted(unknown))}.")
    values = source_clean(company, dict(changes))
    with transaction.atomic():
        source = Source.objects.for_company(company).select_for_update().filter(id=source_id).first()
        if source is None:
            raise NotFound(code="source_not_found", message="Source not found.")
        for name, value in values.items():
            setattr(source, name, value)
        source.save()
    return source


def source_delete(*, company: Company, source_id: int, keep_documents: bool = False) -> int:
    """Delete a source with its runs; its documents too unless ``keep_documents`` (one change batch).

    Returns:
        How many documents were removed.

    Raises:
        NotFound(code="source_not_found").
    """
    source = source_get(company=company, source_id=source_id)
    removed = 0
    with transaction.atomic(), services.document_change_batch(company=company, origin="source_delete",
                                                              origin_id=source.id) as batch:
        if not keep_documents:
            for document_id in _owned_documents(source):
                services.document_delete(company=company, document_id=document_id, batch=batch)
                removed += 1
        source.delete()
    return removed


def _owned_documents(source: Source) -> list[int]:
    return list(SourcePage.objects.filter(source=source, owns_document=True, document__isnull=False)
                .values_list("document_id", flat=True))


# --- runs --------------------------------------------------------------------------------------------

def sync_run_get(*, company: Company, run_id: int) -> SyncRun:
    """One run of ``company``. Raises NotFound(code="sync_run_not_found")."""
    run = SyncRun.objects.for_company(company).select_related("source").filter(id=run_id).first()
    if run is None:
        raise NotFound(code="sync_run_not_found", message="Sync run not found.")
    return run


def source_sync_start(*, company: Company, source_id: int, trigger: str = "manual") -> SyncRun:
    """Queue a run of a source (the task runs it after commit; without a broker, in a background thread).
    A run already queued or running is returned instead of a second one.

    Raises:
        NotFound(code="source_not_found").
    """
    from rag.tasks import source_sync_task

    with transaction.atomic():
        source = Source.objects.for_company(company).select_for_update().filter(id=source_id).first()
        if source is None:
            raise NotFound(code="source_not_found", message="Source not found.")
        active = _active_run(source)
        if active is not None:
            return active
        run = SyncRun.objects.create(company=company, source=source, trigger=trigger)
        # Without a broker (development) the run goes to the web process's background thread: a crawl
        # must not hold the admin's or the API's request (gunicorn's 30 s timeout would kill it).
        enqueue_on_commit(source_sync_task, run.id, background=True)
    return run


def _active_run(source: Source) -> SyncRun | None:
    stale = timezone.now() - RUN_STALE_AFTER
    return (SyncRun.objects.filter(source=source, status__in=[SyncRun.Status.QUEUED, SyncRun.Status.RUNNING],
                                   created_at__gte=stale).order_by("-id").first())


def sources_sync_due(*, now=None) -> int:
    """Queue a run of every daily or weekly source whose last run finished that long ago (or never ran);
    beat calls it every 15 minutes (all companies). Runs queued or running for more than ``RUN_STALE_AFTER``
    (a worker that died) are marked failed first. Returns how many runs were queued."""
    now = now or timezone.now()
    SyncRun.objects.filter(status__in=[SyncRun.Status.QUEUED, SyncRun.Status.RUNNING],
                           created_at__lt=now - RUN_STALE_AFTER).update(
        status=SyncRun.Status.FAILED, finished_at=now,
        error=f"Stopped: not finished {RUN_STALE_AFTER} after it was queued (its worker stopped).")
    queued = 0
    for source in Source.objects.exclude(schedule=Source.Schedule.MANUAL).select_related("company"):
        interval = SCHEDULE_INTERVALS[source.schedule]
        if source.last_synced_at is not None and source.last_synced_at > now - interval:
            continue
        if _active_run(source) is not None:
            continue
        source_sync_start(company=source.company, source_id=source.id, trigger="schedule")
        queued += 1
    return queued


def source_sync(*, company: Company, source_id: int, trigger: str = "command",
                progress: RunProgress | None = None) -> SyncRun:
    """Create a run of a source and carry it out now, in this process (the command; tests).

    Raises:
        NotFound(code="source_not_found").
    """
    source = source_get(company=company, source_id=source_id)
    run = SyncRun.objects.create(company=company, source=source, trigger=trigger)
    return sync_run_execute(run_id=run.id, progress=progress)


def sync_run_execute(*, run_id: int, progress: RunProgress | None = None) -> SyncRun:
    """Carry out a queued run (the task's body): fetch, compare, add/replace/remove documents in one change
    batch, index them, write the summary, alert the admins. Running a finished run again does nothing.

    Returns:
        The run, refreshed (status succeeded or failed).
    """
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().select_related("source", "company").filter(id=run_id).first()
        if run is None or run.status in (SyncRun.Status.SUCCEEDED, SyncRun.Status.FAILED):
            return run
        # A redelivered task (its worker died mid-run) starts the run over: the counters start from zero.
        run.status, run.started_at = SyncRun.Status.RUNNING, timezone.now()
        run.pages_done = run.pages_total = run.added = run.changed = run.removed = run.failed = run.unchanged = 0
        run.failures, run.error = [], ""
        run.save()
    fetcher = crawling.Fetcher(user_agent=settings.SOURCE_USER_AGENT, timeout=settings.SOURCE_FETCH_TIMEOUT_SECONDS,
                               max_bytes=settings.DOCUMENT_MAX_BYTES,
                               allow_private=settings.DOCUMENT_URL_ALLOW_PRIVATE,
                               concurrency=settings.SOURCE_HOST_CONCURRENCY,
                               rate_per_second=settings.SOURCE_HOST_RATE_PER_SECOND,
                               max_crawl_delay=settings.SOURCE_MAX_CRAWL_DELAY_SECONDS)
    try:
        SourceCrawl(run, fetcher, progress).carry_out()
    except ServiceError as exc:
        _run_finish(run, fetcher, error=f"{exc.message} ({exc.code})")
    except Exception as exc:  # a bug or the database: the run says so instead of staying "running"
        logger.exception("sync run %s failed", run.id)
        _run_finish(run, fetcher, error=f"{type(exc).__name__}: {exc}")
    else:
        _run_finish(run, fetcher)
    finally:
        fetcher.close()
    run.refresh_from_db()
    _run_alert(run)
    return run


def _run_finish(run: SyncRun, fetcher: crawling.Fetcher, *, error: str = "") -> None:
    now = timezone.now()
    run.status = SyncRun.Status.FAILED if error else SyncRun.Status.SUCCEEDED
    run.error, run.finished_at, run.bytes_received = error[:4000], now, fetcher.bytes_received
    run.save()
    Source.objects.filter(id=run.source_id).update(last_synced_at=now)



# --- alerts ------------------------------------------------------------------------------------------

def sync_run_alert_reason(run: SyncRun) -> str:
    """Why the company's admins should hear about ``run`` ("" when they need not): it failed, or it added,
    changed or removed more than the source's ``change_alert_percent`` of the pages it knows."""
    if run.status == SyncRun.Status.FAILED:
        return f"the run failed: {run.error}"
    moved = run.added + run.changed + run.removed
    known = max(1, run.added + run.changed + run.removed + run.unchanged + run.failed)
    percent = 100 * moved / known
    if moved and percent > run.source.change_alert_percent:
        return (f"{moved} of {known} pages changed ({percent:.0f} %, above the source's "
                f"{run.source.change_alert_percent} %): {run.added} added, {run.changed} changed, "
                f"{run.removed} removed")
    return ""


def _run_alert(run: SyncRun) -> None:
    """Email the company's owners and admins once about a run that needs a look (``sync_run_alert_reason``)."""
    from django.core.mail import send_mail

    from tenants.models import Membership

    reason = sync_run_alert_reason(run)
    if not reason or not SyncRun.objects.filter(id=run.id, alerted=False).update(alerted=True):
        return
    run.alerted = True
    recipients = sorted({m.user.email for m in Membership.objects.filter(
        company_id=run.company_id, role__in=[Membership.Role.OWNER, Membership.Role.ADMIN]).select_related("user")
        if m.user.email})
    logger.warning("sync run %s of source %s: %s; telling %d admins", run.id, run.source_id, reason,
                   len(recipients))
    if recipients:
        send_mail(subject=f"[saas_bot] Source “{run.source}”: {reason[:120]}",
                  message=(f"The sync of “{run.source}” ({run.source.url}) finished at "
                           f"{run.finished_at:%Y-%m-%d %H:%M} UTC: {reason}.\nSummary: {run.added} added, {run.changed} changed, "
                           f"{run.removed} removed, {run.failed} failed, {run.unchanged} unchanged.\n"
                           "See the source's runs in the admin."),
                  from_email=None, recipient_list=recipients, fail_silently=True)
