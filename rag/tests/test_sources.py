"""Source sync on real HTTP against the local test site (saas_bot/testing/local_site.py on 127.0.0.1): robots.txt, the
User-Agent, conditional requests and 304s, changed / removed / added pages, a redirect loop, a slow page,
sitemaps and sitemap indexes, the private-address refusal, one change batch per run, alerts."""
import pytest
from django.core import mail

from rag import services
from saas_bot.testing.local_site import LocalSite
from rag.models import Document, Source, SourcePage, SyncRun
from rag import sources
from rag.sources import source_create, sources_sync_due, sync_run_execute
from tenants.models import Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(settings):
    settings.DOCUMENT_URL_ALLOW_PRIVATE = True  # the site is on 127.0.0.1
    settings.SOURCE_FETCH_TIMEOUT_SECONDS = 1.0
    settings.SOURCE_HOST_RATE_PER_SECOND = 0  # no pause between requests to the local site
    with LocalSite(sections=2, pages_per_section=3, slow_seconds=2.5) as local:
        yield local


@pytest.fixture
def source_sync(django_capture_on_commit_callbacks):
    """rag.sources.source_sync with the on-commit callbacks (the change batch's listeners) run, as they
    would be after the run's commit outside the test's transaction."""
    def sync(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return sources.source_sync(**kwargs)
    return sync


@pytest.fixture
def batches():
    seen = []
    services.document_changes_subscribe(seen.append)
    yield seen
    services.document_changes_unsubscribe(seen.append)


def _website(company, site, **fields):
    return source_create(company=company, name="Help", url=site.url("/"), **fields)


def _summary(run):
    return {k: getattr(run, k) for k in ("added", "changed", "removed", "failed", "unchanged")}


def test_website_first_run_then_one_change_one_removal_one_addition(company, site, batches, source_sync):
    source = _website(company, site, max_depth=2)
    first = source_sync(company=company, source_id=source.id)
    assert first.status == SyncRun.Status.SUCCEEDED, first.error
    articles = sorted(site.pages)
    # The 6 articles and the 2 section pages have main content; the index is a list of links. The redirect
    # loop and the slow page failed; the robots.txt exclusion was never requested.
    urls = set(Document.objects.for_company(company).values_list("source_url", flat=True))
    assert {site.url(p) for p in articles} <= urls
    assert site.url("/private/secret.html") not in urls and "/private/secret.html" not in site.requests
    assert {f["url"] for f in first.failures} == {site.url("/loop/a"), site.url("/slow.html")}
    assert {f["code"] for f in first.failures} == {"document_url_unreachable"}
    assert first.failed == 2 and first.added == len(urls) and first.removed == first.changed == 0
    assert all(d.status == Document.Status.READY for d in Document.objects.for_company(company))
    assert site.user_agents == {"saas_bot-sync/1.0 (knowledge base sync; respects robots.txt)"}
    assert batches[-1].origin == "sync_run" and batches[-1].origin_id == first.id
    assert len(batches) == 1 and len(batches[0].changes) == first.added

    changed, gone = articles[0], articles[1]
    old_document = SourcePage.objects.get(url=site.url(changed)).document
    site.change(changed)
    site.remove(gone)
    site.add("/docs/s1/p9.html")
    site.reset_counters()
    second = source_sync(company=company, source_id=source.id)
    assert second.status == SyncRun.Status.SUCCEEDED, second.error
    assert _summary(second) == {"added": 1, "changed": 1 + 2, "removed": 1, "failed": 2,
                                "unchanged": first.added - 1 - 2 - 1}  # the two section pages list the change
    document = Document.objects.get(id=old_document.id)
    assert document.status == Document.Status.READY and site.article_sentences(changed)[0] in \
        " ".join(document.chunks.values_list("text", flat=True))
    assert not Document.objects.filter(source_url=site.url(gone)).exists()
    assert Document.objects.filter(source_url=site.url("/docs/s1/p9.html")).exists()
    assert [c.action for c in batches[-1].changes].count("removed") == 1 and len(batches) == 2
    # Unchanged articles were answered 304 without a body: this run received far fewer bytes.
    assert second.bytes_received < first.bytes_received / 2


def test_unchanged_site_costs_304s_only(company, site, batches, source_sync):
    source = _website(company, site)
    first = source_sync(company=company, source_id=source.id)
    first_bytes = site.bytes_sent
    site.reset_counters()
    again = source_sync(company=company, source_id=source.id)
    assert _summary(again) == {"added": 0, "changed": 0, "removed": 0, "failed": 2, "unchanged": first.added}
    assert len(batches) == 1  # nothing changed: no second batch
    assert site.bytes_sent < 0.25 * first_bytes  # small site: the index, robots.txt and headers dominate


def test_last_modified_alone_gets_a_304(company, site, source_sync):
    source = source_create(company=company, name="One", url=site.url("/docs/s0/p0.html"), kind=Source.Kind.URL)
    source_sync(company=company, source_id=source.id)
    SourcePage.objects.update(etag="")  # a server without ETags: If-Modified-Since only
    run = source_sync(company=company, source_id=source.id)
    assert _summary(run) == {"added": 0, "changed": 0, "removed": 0, "failed": 0, "unchanged": 1}
    assert run.bytes_received < 100  # robots.txt only


def test_sitemap_index_and_patterns(company, site, source_sync):
    source = source_create(company=company, name="Map", url=site.url("/sitemap.xml"), kind=Source.Kind.SITEMAP,
                           include_patterns="/docs/*", exclude_patterns="/docs/s1/*")
    run = source_sync(company=company, source_id=source.id)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert sorted(Document.objects.values_list("source_url", flat=True)) == \
        sorted(site.url(p) for p in site.pages if p.startswith("/docs/s0/"))
    source.exclude_patterns = ""
    source.save()
    assert source_sync(company=company, source_id=source.id).added == 3


def test_a_single_url_that_disappears_is_removed(company, site, source_sync):
    source = source_create(company=company, name="One", url=site.url("/docs/s0/p0.html"), kind=Source.Kind.URL)
    assert source_sync(company=company, source_id=source.id).added == 1
    site.remove("/docs/s0/p0.html")
    run = source_sync(company=company, source_id=source.id)
    assert run.status == SyncRun.Status.SUCCEEDED and run.removed == 1 and not Document.objects.exists()


def test_a_failing_start_page_removes_nothing(company, site, source_sync):
    source = _website(company, site, max_depth=1)
    kept = source_sync(company=company, source_id=source.id).added
    source.url = site.url("/loop/a")
    source.save()
    run = source_sync(company=company, source_id=source.id)
    assert run.status == SyncRun.Status.FAILED and "redirects more than 5 times" in run.error
    assert Document.objects.count() == kept


def test_private_addresses_stay_refused(company, site, settings, source_sync):
    settings.DOCUMENT_URL_ALLOW_PRIVATE = False
    source = _website(company, site)
    run = source_sync(company=company, source_id=source.id)
    assert run.status == SyncRun.Status.FAILED and "document_url_forbidden" in run.error
    assert site.requests == {}


def test_failed_run_and_big_change_email_the_admins(company, site, django_user_model, source_sync):
    user = django_user_model.objects.create_user("admin@acme.test", "admin@acme.test", "pw")
    Membership.objects.create(company=company, user=user, role=Membership.Role.ADMIN)
    source = _website(company, site, max_depth=1, change_alert_percent=50)
    run = source_sync(company=company, source_id=source.id)  # everything is new: 100 % > 50 %
    assert run.alerted and len(mail.outbox) == 1 and "admin@acme.test" in mail.outbox[0].to
    quiet = source_sync(company=company, source_id=source.id)
    assert not quiet.alerted and len(mail.outbox) == 1
    site.stop()
    failed = source_sync(company=company, source_id=source.id)
    assert failed.status == SyncRun.Status.FAILED and failed.alerted and len(mail.outbox) == 2


def test_schedule_queues_due_sources_only(company, site):
    daily = _website(company, site, schedule=Source.Schedule.DAILY, max_depth=0)
    _website(company, site, schedule=Source.Schedule.MANUAL, max_depth=0)
    assert sources_sync_due() == 1
    run = SyncRun.objects.get(source=daily)
    assert run.trigger == "schedule" and run.status == SyncRun.Status.QUEUED
    sync_run_execute(run_id=run.id)  # what the worker does with the queued task
    run.refresh_from_db()
    assert run.trigger == "schedule" and run.status == SyncRun.Status.SUCCEEDED
    assert sources_sync_due() == 0  # ran less than a day ago


def test_sync_sources_command_prints_progress_and_summary(company, site, make_company):
    from io import StringIO

    from django.core.management import call_command

    other = make_company("beta")
    mine = _website(company, site, max_depth=1)
    source_create(company=other, name="Theirs", url=site.url("/"), max_depth=0)
    out, err = StringIO(), StringIO()
    call_command("sync_sources", "--company", company.slug, "--source", str(mine.id), stdout=out, stderr=err)
    assert "Syncing Help:" in err.getvalue() and "page" in err.getvalue()
    assert f"acme / Help (source {mine.id}" in out.getvalue() and "added" in out.getvalue()
    assert "failed: " in out.getvalue()  # the redirect loop and the slow page, with their codes
    assert not SyncRun.objects.filter(source__company=other).exists()


def test_a_run_left_by_a_dead_worker_is_failed_and_the_source_queued_again(company, site):
    from datetime import timedelta

    from django.utils import timezone

    source = _website(company, site, schedule=Source.Schedule.WEEKLY, max_depth=0)
    dead = SyncRun.objects.create(company=company, source=source, status=SyncRun.Status.RUNNING)
    SyncRun.objects.filter(id=dead.id).update(created_at=timezone.now() - timedelta(hours=7))
    assert sources_sync_due() == 1
    dead.refresh_from_db()
    assert dead.status == SyncRun.Status.FAILED and "worker stopped" in dead.error
    assert SyncRun.objects.filter(source=source, status=SyncRun.Status.QUEUED).count() == 1


def test_sync_sources_with_nothing_to_sync_is_not_a_failure(company):
    import io

    from django.core.management import CommandError, call_command

    out = io.StringIO()
    call_command("sync_sources", "--company", company.slug, stdout=out)  # a scheduled run, no sources yet
    assert "No sources to sync." in out.getvalue()
    with pytest.raises(CommandError, match="No such source"):
        call_command("sync_sources", "--source", "999999")
