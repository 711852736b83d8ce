"""Documents in the admin: several files at once, a bad file refused with the service's code, status, actions."""
import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from rag.models import Chunk, Collection, Document, KnowledgeBaseVersion
from tenants.models import Membership

pytestmark = pytest.mark.django_db


def _messages(response):
    return [str(m) for m in response.context["messages"]]


def test_upload_several_files_one_of_them_bad(owner_client, company, shared_data):
    docs = shared_data / "kb" / "zulip-help" / "docs"
    collection = Collection.objects.create(company=company, name="Help centre")
    files = [SimpleUploadedFile("mobile-notifications.pdf", (docs / "mobile-notifications.pdf").read_bytes()),
             SimpleUploadedFile("invite-new-users.docx", (docs / "invite-new-users.docx").read_bytes()),
             SimpleUploadedFile("setup.exe", b"MZ\x90\x00 not a document")]
    response = owner_client.post("/admin/rag/document/add/", {"files": files, "collection": collection.pk},
                                 follow=True)
    assert response.redirect_chain[-1][0] == "/admin/rag/document/"
    stored = Document.objects.for_company(company)
    assert sorted(stored.values_list("file_name", flat=True)) == ["invite-new-users.docx", "mobile-notifications.pdf"]
    assert {d.collection for d in stored} == {collection}
    assert any("Not added: setup.exe:" in m and "(document_unsupported_type)" in m for m in _messages(response))
    page = response.content.decode()
    assert "Pending" in page and 'http-equiv="refresh"' in page



@pytest.mark.django_db(transaction=True)
def test_an_upload_indexed_in_the_request_says_how_it_went(owner_client, company):
    """Without a broker the upload is indexed before the page comes back (found by the new-user trial: "it is
    being indexed" for a document that was ready, or had failed)."""
    files = [SimpleUploadedFile("refunds.md", b"# Refunds\n\nRefunds take five days after the request."),
             SimpleUploadedFile("broken.pdf", b"%PDF-1.4 this is not really a PDF")]
    response = owner_client.post("/admin/rag/document/add/", {"files": files}, follow=True)
    said = _messages(response)
    assert any(m.startswith("Added “Refunds”: indexed (") for m in said), said
    assert any("could not be indexed" in m and "(document_unreadable)" in m for m in said), said
    assert not any("being indexed" in m for m in said)
    again = owner_client.post("/admin/rag/document/add/",
                              {"files": [SimpleUploadedFile("broken.pdf", b"%PDF-1.4 this is not really a PDF")]},
                              follow=True)
    assert any("could not be indexed (document_unreadable); not added again" in m for m in _messages(again))

def test_only_bad_input_keeps_the_form_with_the_errors(owner_client, company):
    response = owner_client.post("/admin/rag/document/add/", {"files": [SimpleUploadedFile("empty.md", b"")]})
    assert response.status_code == 200
    assert "(document_empty)" in response.content.decode()
    assert owner_client.post("/admin/rag/document/add/", {}).status_code == 200
    assert not Document.objects.exists()


def test_plan_limits_are_the_same_coded_error_as_the_api(make_company, client):
    company = make_company("tiny", max_documents=1)
    user = User.objects.create_user("o@tiny.test", "o@tiny.test", "pw-Xy7!long", is_staff=True)
    Membership.objects.create(user=user, company=company, role=Membership.Role.ADMIN)
    client.force_login(user)
    client.post("/admin/rag/document/add/", {"text_title": "One", "text": "# One\nFirst text."})
    response = client.post("/admin/rag/document/add/", {"text_title": "Two", "text": "# Two\nSecond text."})
    assert response.status_code == 200 and "(quota_documents)" in response.content.decode()
    assert list(Document.objects.values_list("title", flat=True)) == ["One"]


def test_status_progress_reindex_and_delete_as_one_version(owner_client, company):
    from rag.services import document_add, documents_ingest

    ready = document_add(company=company, file_name="refunds.md", data=b"# Refunds\nRefunds take five days.",
                         schedule=False)[0]
    documents_ingest(company=company, documents=[ready])
    assert Chunk.objects.filter(document=ready).exists()
    busy = Document.objects.create(company=company, title="Big manual", file_name="big.pdf", checksum="b" * 64,
                                   status=Document.Status.PROCESSING, progress=40)
    broken = Document.objects.create(company=company, title="Scan", file_name="scan.pdf", checksum="c" * 64,
                                     status=Document.Status.FAILED, error="The PDF has no text layer.")
    page = owner_client.get("/admin/rag/document/").content.decode()
    assert "Processing 40%" in page and "Failed: The PDF has no text layer." in page and "Ready" in page

    owner_client.post("/admin/rag/document/", {"action": "reindex", "_selected_action": [broken.pk]})
    broken.refresh_from_db()
    assert broken.status == Document.Status.PENDING
    assert "Answering" in page and page.count('alt="True"') == 1  # only the indexed one answers
    owner_client.post("/admin/rag/document/", {"action": "delete_documents", "_selected_action": [ready.pk, busy.pk]})
    assert not Document.objects.filter(pk__in=[ready.pk, busy.pk]).exists()
    assert not Chunk.objects.filter(company=company, live=True).exists()  # kept, not live: a rollback restores
    (deleted,) = KnowledgeBaseVersion.objects.filter(company=company, origin="delete")  # one version for both
    assert deleted.removed == 2 and deleted.status == KnowledgeBaseVersion.Status.LIVE


def test_export_lists_the_company_rows_as_plain_text(owner_client, company, make_company):
    import csv
    import io

    mine = Document.objects.create(company=company, title="Prices", file_name="prices.md", checksum="d" * 64,
                                   status=Document.Status.READY, chunk_count=3)
    Document.objects.create(company=make_company("rival"), title="Rival secrets", file_name="s.md",
                            checksum="e" * 64)
    response = owner_client.post("/admin/rag/document/", {"action": "export_csv",
                                                          "_selected_action": list(Document.objects.values_list(
                                                              "pk", flat=True))})
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:4] == ["Title", "Status", "Answering", "Chunk count"]
    assert len(rows) == 2 and rows[1][:6] == [mine.title, "Ready", "no", "3", "0", ""]  # no HTML, no "None"
    assert "Rival secrets" not in response.content.decode()


def test_add_page_and_a_url_fetched_from_a_real_server(owner_client, company, settings):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    page = owner_client.get("/admin/rag/document/add/").content.decode()
    assert 'name="files"' in page and "multiple" in page and 'name="url"' in page and 'name="text"' in page

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<html><head><title>Shipping</title></head><body><h1>Shipping</h1><p>We ship in 2 days.</p>"
            self.send_response(200 if self.path == "/shipping" else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    settings.DOCUMENT_URL_ALLOW_PRIVATE = True  # a local server stands in for a public site
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        missing = owner_client.post("/admin/rag/document/add/", {"url": f"{base}/gone"})
        assert missing.status_code == 200 and "(document_url_unreachable)" in missing.content.decode()
        assert owner_client.post("/admin/rag/document/add/", {"url": f"{base}/shipping"}).status_code == 302
    finally:
        server.shutdown()
    document = Document.objects.for_company(company).get()
    assert document.source_url == f"{base}/shipping" and document.status == Document.Status.PENDING
