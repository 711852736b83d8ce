"""Documents through the API: multipart uploads of real files, text, refusals that store nothing, idempotency."""
import pytest

from rag.models import Document
from saas_bot.testing.pytest_plugin import DEMO_DIR

pytestmark = pytest.mark.django_db

KB = DEMO_DIR / "kb"


def _upload(api, *files, headers=None):
    return api.post("/api/v1/documents", {"files": list(files)}, format="multipart", headers=headers or {})


def _file(path):
    return open(path, "rb")


def test_upload_several_real_files_then_poll_ready(company, api, shared_data, django_capture_on_commit_callbacks):
    zulip = sorted((shared_data / "kb" / "zulip-help" / "docs").glob("*.md"))[:1][0]
    with _file(KB / "sharing-links.md") as a, _file(KB / "two-factor-authentication.txt") as b, _file(zulip) as c, \
            django_capture_on_commit_callbacks(execute=True):
        response = _upload(api, a, b, c)
    assert response.status_code == 201, response.content
    results = response.json()["results"]
    assert [r["outcome"] for r in results] == ["created"] * 3
    assert [r["name"] for r in results] == ["sharing-links.md", "two-factor-authentication.txt", zulip.name]
    # No broker: ingestion ran in-process after commit (the on-commit hooks run here), so the documents are ready when read back.
    for result in results:
        document = api.get(f"/api/v1/documents/{result['document']['id']}").json()
        assert document["status"] == "ready" and document["progress"] in (0, 100)
        assert document["chunk_count"] > 0
    listed = api.get("/api/v1/documents", {"status": "ready"}).json()
    assert listed["count"] == 3
    assert api.get("/api/v1/documents", {"status": "failed"}).json()["count"] == 0


@pytest.mark.parametrize("name, content, status, code", [
    ("malware.exe", b"MZ\x90\x00binary", 400, "document_unsupported_type"),
    ("notes", b"no extension", 400, "document_unsupported_type"),
    ("empty.txt", b"", 400, "document_empty"),
    ("big.txt", b"x" * 2048, 413, "document_too_large"),
])
def test_refused_upload_stores_nothing(company, api, settings, tmp_path, name, content, status, code):
    settings.DOCUMENT_MAX_BYTES = 1024
    path = tmp_path / name
    path.write_bytes(content)
    settings.MEDIA_ROOT = str(tmp_path / "media")
    with _file(path) as f:
        response = _upload(api, f)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code and error["detail"]["results"][0]["outcome"] == "failed"
    assert not Document.objects.exists()
    assert not (tmp_path / "media").exists() or not any((tmp_path / "media").rglob("*.*"))


def test_mixed_upload_reports_each_file(company, api, tmp_path):
    bad = tmp_path / "image.png"
    bad.write_bytes(b"\x89PNG....")
    with _file(KB / "sharing-links.md") as good, _file(bad) as wrong:
        response = _upload(api, good, wrong)
    assert response.status_code == 201
    outcomes = {r["name"]: (r["outcome"], r["error"] and r["error"]["code"]) for r in response.json()["results"]}
    assert outcomes == {"sharing-links.md": ("created", None), "image.png": ("failed", "document_unsupported_type")}
    assert Document.objects.count() == 1


def test_request_over_the_upload_limit_is_413(company, api, settings):
    settings.API_UPLOAD_MAX_BYTES = 512
    with _file(KB / "sharing-links.md") as f:
        response = _upload(api, f)
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    assert not Document.objects.exists()


def test_text_url_reindex_delete(company, api):
    response = api.post("/api/v1/documents", {"title": "Refunds", "text": "# Refunds\nRefunds take five days."},
                        format="json")
    assert response.status_code == 201
    document_id = response.json()["results"][0]["document"]["id"]
    duplicate = api.post("/api/v1/documents", {"title": "Refunds", "text": "# Refunds\nRefunds take five days."},
                         format="json")
    assert duplicate.status_code == 200 and duplicate.json()["results"][0]["outcome"] == "duplicate"
    response = api.post("/api/v1/documents", {"url": "ftp://example.com/x"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "document_url_invalid"
    response = api.post("/api/v1/documents", {"title": "No body"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_failed"
    response = api.post(f"/api/v1/documents/{document_id}/reindex")
    assert response.status_code == 202 and response.json()["id"] == document_id
    assert api.delete(f"/api/v1/documents/{document_id}").status_code == 204
    assert api.get(f"/api/v1/documents/{document_id}").status_code == 404
    assert not Document.objects.exists()


def test_idempotent_upload_stores_one_document(company, api):
    headers = {"Idempotency-Key": "upload-1"}
    with _file(KB / "sharing-links.md") as f:
        first = _upload(api, f, headers=headers)
    with _file(KB / "sharing-links.md") as f:
        second = _upload(api, f, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json() and second["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Document.objects.count() == 1
    with _file(KB / "two-factor-authentication.txt") as f:
        other = _upload(api, f, headers=headers)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert Document.objects.count() == 1


def test_idempotency_key_in_progress_is_409(company, api):
    from saas_bot.api.models import IdempotencyRecord

    # A first request that is still running has a record without a status.
    first = api.post("/api/v1/documents", {"title": "A", "text": "alpha"}, format="json",
                     headers={"Idempotency-Key": "k"})
    assert first.status_code == 201
    IdempotencyRecord.objects.filter(key="k").update(status_code=None, response_body="")
    again = api.post("/api/v1/documents", {"title": "A", "text": "alpha"}, format="json",
                     headers={"Idempotency-Key": "k"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "idempotency_key_in_progress"
    assert Document.objects.count() == 1


def test_abandoned_and_expired_keys_can_run_again(company, api, settings):
    import datetime as dt

    from django.utils import timezone

    from saas_bot.api.idempotency import idempotency_records_purge
    from saas_bot.api.models import IdempotencyRecord

    body, headers = {"title": "A", "text": "alpha"}, {"Idempotency-Key": "k"}
    assert api.post("/api/v1/documents", body, format="json", headers=headers).status_code == 201
    # The first request's process died before answering, long ago: the key runs again.
    IdempotencyRecord.objects.filter(key="k").update(
        status_code=None, created_at=timezone.now() - dt.timedelta(seconds=settings.API_IDEMPOTENCY_ABANDONED_SECONDS + 1))
    again = api.post("/api/v1/documents", body, format="json", headers=headers)
    assert again.status_code == 200 and again.json()["results"][0]["outcome"] == "duplicate"
    assert "Idempotent-Replayed" not in again
    # Past 24 h a stored response is purged (beat, hourly) and the key is free for a new request.
    IdempotencyRecord.objects.filter(key="k").update(created_at=timezone.now() - dt.timedelta(hours=25))
    assert idempotency_records_purge() == 1
    other = api.post("/api/v1/documents", {"title": "B", "text": "beta"}, format="json", headers=headers)
    assert other.status_code == 201
    # Expired but not yet purged: a new request with the key runs (no 422 for the old body).
    IdempotencyRecord.objects.filter(key="k").update(created_at=timezone.now() - dt.timedelta(hours=25))
    third = api.post("/api/v1/documents", {"title": "C", "text": "gamma"}, format="json", headers=headers)
    assert third.status_code == 201
    assert Document.objects.count() == 3


def test_more_files_than_allowed_are_refused_and_nothing_is_stored(company, api, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.API_UPLOAD_MAX_FILES = 3
    files = [SimpleUploadedFile(f"note{n}.txt", f"Note number {n} about refunds.".encode()) for n in range(4)]
    response = api.post("/api/v1/documents", {"files": files}, format="multipart")
    assert response.status_code == 400 and response.json()["error"]["code"] == "validation_failed"
    assert "At most 3 files" in str(response.json()["error"]["detail"])
    assert not Document.objects.exists()


def test_the_admin_and_the_api_add_through_the_same_service(owner_client, api, company):
    """Same input, same service (rag.document_batch): the API's error and the admin's form error carry the same
    code and message, and neither stores anything."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.utils.html import escape

    api_body = api.post("/api/v1/documents", {"files": [SimpleUploadedFile("setup.exe", b"MZ\x90\x00")]},
                        format="multipart").json()["error"]
    admin = owner_client.post("/admin/rag/document/add/", {"files": [SimpleUploadedFile("setup.exe", b"MZ\x90\x00")]})
    assert api_body["code"] == "document_unsupported_type"
    assert admin.status_code == 200  # the add form again, with the refusal
    assert escape(f"setup.exe: {api_body['message']} (document_unsupported_type)") in admin.content.decode()
    assert not Document.objects.exists()


def test_a_multipart_upload_goes_into_the_collection_given_by_its_id(company, make_company, api):
    """A form field is text: "7" is the id 7 (the fresh-user trial found every multipart upload with a
    collection refused as "Must be an integer.")."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from rag.models import Collection

    billing = Collection.objects.create(company=company, name="Billing")
    theirs = Collection.objects.create(company=make_company("rival"), name="Theirs")
    upload = SimpleUploadedFile("refunds.md", b"# Refunds\nRefunds take five days.")
    response = api.post("/api/v1/documents", {"files": [upload], "collection": str(billing.id)}, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["results"][0]["document"]["collection"] == billing.id
    for bad in (str(theirs.id), "99999", "¹", "x"):
        upload = SimpleUploadedFile("other.md", b"# Other\nSomething else.")
        refused = api.post("/api/v1/documents", {"files": [upload], "collection": bad}, format="multipart")
        assert refused.status_code == 400 and "collection" in refused.json()["error"]["detail"], bad
