"""Sources in the admin: a company admin adds a website source, it is crawled (progress, runs listed), and a
changed page is the only one the next run picks up."""
import pytest

from saas_bot.testing.local_site import LocalSite
from rag.models import Document, Source, SyncRun
from rag.sources import sync_run_execute

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(settings):
    settings.DOCUMENT_URL_ALLOW_PRIVATE = True
    settings.SOURCE_FETCH_TIMEOUT_SECONDS = 1.0
    settings.SOURCE_HOST_RATE_PER_SECOND = 0
    with LocalSite(sections=1, pages_per_section=3, slow_seconds=2.0) as local:
        yield local


def test_add_a_website_in_the_admin_then_sync_a_changed_page(owner_client, company, site):
    form = {"name": "Help centre", "kind": "website", "url": site.url("/"), "include_patterns": "",
            "exclude_patterns": "/slow.html\n/loop/*", "max_pages": 50, "max_depth": 2, "schedule": "daily",
            "collection": "", "change_alert_percent": 20, "sync_now": "on",
            "runs-TOTAL_FORMS": 0, "runs-INITIAL_FORMS": 0}
    response = owner_client.post("/admin/rag/source/add/", form, follow=True)
    assert response.status_code == 200, response.content[:2000]
    source = Source.objects.get(company=company)
    run = SyncRun.objects.get(source=source)
    assert run.status == SyncRun.Status.QUEUED
    assert "Queued: 0 of 0 pages" in owner_client.get("/admin/rag/source/").content.decode()
    sync_run_execute(run_id=run.id)  # what the worker does with the queued task
    run.refresh_from_db()
    # The 3 articles, their section and the index (one section: its list of titles is main content).
    assert run.status == SyncRun.Status.SUCCEEDED and run.failed == 0 and run.added == 5
    listing = owner_client.get("/admin/rag/source/").content.decode()
    assert "5 added, 0 changed, 0 removed, 0 failed, 0 unchanged" in listing

    site.change("/docs/s0/p2.html")
    response = owner_client.post("/admin/rag/source/", {"action": "sync_now_action", "_selected_action": [source.pk]},
                                 follow=True)
    assert response.status_code == 200
    queued = SyncRun.objects.filter(source=source, status=SyncRun.Status.QUEUED).get()
    assert 'http-equiv="refresh"' in owner_client.get("/admin/rag/syncrun/").content.decode()
    sync_run_execute(run_id=queued.id)
    queued.refresh_from_db()
    assert (queued.added, queued.changed, queued.removed, queued.unchanged) == (0, 1, 0, 4)
    page = owner_client.get(f"/admin/rag/syncrun/{queued.id}/change/").content.decode()
    assert "Succeeded" in page
    assert Document.objects.filter(company=company, status=Document.Status.READY).count() == 5


def test_a_bad_source_keeps_the_form_with_the_error(owner_client, company):
    response = owner_client.post("/admin/rag/source/add/", {
        "name": "x", "kind": "website", "url": "https://help.example/", "max_pages": 0, "max_depth": 1,
        "schedule": "manual", "change_alert_percent": 20, "runs-TOTAL_FORMS": 0, "runs-INITIAL_FORMS": 0})
    assert response.status_code == 200 and "(source_max_pages_invalid)" in response.content.decode()
    assert not Source.objects.exists()


def test_a_refused_save_is_shown_on_the_form_not_as_added(admin_client, company, make_company):
    """Staff choose the company; a collection of another company is refused by source_create in the save: the
    form is shown again with the code, nothing is stored, no "added successfully"."""
    from rag.models import Collection

    theirs = Collection.objects.create(company=make_company("other"), name="Theirs")
    form = {"company": company.pk, "name": "Help", "kind": "website", "url": "https://help.example.com/",
            "include_patterns": "", "exclude_patterns": "", "max_pages": 50, "max_depth": 2, "schedule": "manual",
            "collection": theirs.pk, "change_alert_percent": 20, "runs-TOTAL_FORMS": 0, "runs-INITIAL_FORMS": 0}
    response = admin_client.post("/admin/rag/source/add/", form)
    page = response.content.decode()
    assert response.status_code == 200 and "Collection not found. (collection_not_found)" in page
    assert "added successfully" not in page and 'value="Help"' in page
    assert not Source.objects.exists()


@pytest.mark.parametrize("object_id", ["¹", "٣", "9" * 30])
def test_a_source_id_that_is_not_plain_digits_is_missing_not_a_crash(owner_client, object_id):
    # "¹".isdigit() is True but int("¹") raises: the change view's auto-refresh check once did int() on it.
    response = owner_client.get(f"/admin/rag/source/{object_id}/change/")
    assert response.status_code == 404  # missing, like another company's source; no 500
