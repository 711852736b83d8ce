"""API v1 sources and sync runs: add, change, sync (real HTTP to the local test site), read runs, errors."""
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
    with LocalSite(sections=1, pages_per_section=2, slow_seconds=2.0) as local:
        yield local


def test_add_sync_and_read_the_run(api, company, site):
    created = api.post("/api/v1/sources", {"name": "Help", "kind": "sitemap", "url": site.url("/sitemap.xml"),
                                           "schedule": "weekly"}, format="json")
    assert created.status_code == 201, created.content
    source = created.json()
    assert source["last_run"] is None and source["kind"] == "sitemap" and source["max_pages"] == 200
    started = api.post(f"/api/v1/sources/{source['id']}/sync")
    assert started.status_code == 202 and started.json()["source"] == source["id"]
    assert started.json()["status"] == "queued"
    sync_run_execute(run_id=started.json()["id"])  # what the worker does with the queued task
    run = api.get(f"/api/v1/sync-runs/{started.json()['id']}").json()
    assert run["status"] == "succeeded" and run["added"] == 2 and run["failures"] == []
    assert Document.objects.filter(company=company).count() == 2
    assert api.get("/api/v1/sources").json()["results"][0]["last_run"]["id"] == run["id"]
    listed = api.get("/api/v1/sync-runs", {"source": source["id"], "status": "succeeded"}).json()
    assert [r["id"] for r in listed["results"]] == [run["id"]]

    changed = api.patch(f"/api/v1/sources/{source['id']}", {"exclude_patterns": "/docs/s0/p1.html"},
                        format="json")
    assert changed.status_code == 200 and changed.json()["exclude_patterns"] == "/docs/s0/p1.html"
    again = api.post(f"/api/v1/sources/{source['id']}/sync").json()
    sync_run_execute(run_id=again["id"])
    again = api.get(f"/api/v1/sync-runs/{again['id']}").json()
    assert (again["removed"], again["unchanged"], again["added"]) == (1, 1, 0)

    assert api.delete(f"/api/v1/sources/{source['id']}").status_code == 204
    assert not Document.objects.filter(company=company).exists() and not SyncRun.objects.exists()


@pytest.mark.parametrize("body, code", [
    ({"name": "x", "url": "ftp://example.com/"}, "document_url_invalid"),
    ({"name": "x", "url": "https://example.com/", "max_pages": 0}, "source_max_pages_invalid"),
    ({"name": "x", "url": "https://example.com/", "max_depth": 99}, "source_max_depth_invalid"),
    ({"name": "x", "url": "https://example.com/", "kind": "ftp"}, "validation_failed"),
    ({"name": " ", "url": "https://example.com/"}, "validation_failed"),
    ({"name": "x", "url": "https://example.com/", "max_pages": "many"}, "validation_failed"),
    ({"url": "https://example.com/"}, "validation_failed"),
])
def test_bad_source_is_400_and_stores_nothing(api, body, code):
    response = api.post("/api/v1/sources", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert not Source.objects.exists()
