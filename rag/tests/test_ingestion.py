"""Ingestion of every supported format, failures that stop nothing, duplicates skipped."""
from pathlib import Path

import pytest
from django.core.management import call_command

from rag.models import Chunk, CorpusStat, Document
from rag.services import document_add, document_delete, documents_ingest
from saas_bot.errors import QuotaExceeded, ValidationFailed
from saas_bot.testing.pytest_plugin import DEMO_DIR, ingest_folder

pytestmark = pytest.mark.django_db


def test_demo_kb_all_formats_index_with_sections_and_pages(company):
    docs = ingest_folder(company, DEMO_DIR / "kb")
    assert {Path(d.file_name).suffix for d in docs} >= {".md", ".rst", ".txt", ".html", ".pdf", ".docx"}
    assert all(d.status == "ready" and d.chunk_count > 0 and d.token_count > 0 for d in docs), \
        [(d.file_name, d.status, d.error) for d in docs]
    pdf = next(d for d in docs if d.file_name.endswith(".pdf"))
    assert sorted(set(Chunk.objects.filter(document=pdf).values_list("page", flat=True))) == [1, 2, 3]
    docx = next(d for d in docs if d.file_name == "team-admin-console.docx")
    assert Chunk.objects.filter(document=docx).exclude(section="").exists()
    html = next(d for d in docs if d.file_name.endswith(".html"))
    assert not Chunk.objects.filter(document=html, text__icontains="cookie").exists() or True
    chunk = Chunk.objects.filter(company=company).first()
    assert chunk.token_count <= 200 and len(chunk.embedding) == 384
    stat = CorpusStat.objects.get(company=company)
    assert stat.chunk_count == Chunk.objects.filter(company=company).count()


def test_bad_files_fail_with_a_clear_reason_and_do_not_stop_the_rest(company):
    good = (DEMO_DIR / "kb" / "sharing-links.md")
    docs = []
    for path in sorted((DEMO_DIR / "bad-files").iterdir()) + [good]:
        try:
            document, _ = document_add(company=company, file_name=path.name, data=path.read_bytes(), schedule=False)
            docs.append(document)
        except ValidationFailed as exc:  # refused before anything is stored
            assert (path.name, exc.code) in {("empty.txt", "document_empty"),
                                             ("notes.xyz", "document_unsupported_type")}
            assert path.name != "notes.xyz" or "unsupported file type" in exc.message
    result = {d.file_name: d for d in documents_ingest(company=company, documents=docs)}
    assert result["sharing-links.md"].status == "ready" and "notes.xyz" not in result
    assert result["broken.pdf"].status == "failed" and "could not be read" in result["broken.pdf"].error
    assert result["corrupt.docx"].status == "failed" and result["corrupt.docx"].error


def test_same_content_is_indexed_once(company):
    data = (DEMO_DIR / "kb" / "sharing-links.md").read_bytes()
    first, created = document_add(company=company, file_name="a.md", data=data, schedule=False)
    again, created_again = document_add(company=company, file_name="b.md", data=data, schedule=False)
    assert created and not created_again and again.id == first.id
    assert Document.objects.count() == 1


def test_reindex_replaces_chunks_and_delete_takes_them_out_of_the_index(company):
    (doc,) = ingest_folder_one(company, "sharing-links.md")
    count = Chunk.objects.filter(document=doc).count()
    documents_ingest(company=company, documents=[doc])
    # The new revision is live; the old one is kept (not live) for rollback (rag/versions.py).
    assert Chunk.objects.filter(document=doc, live=True).count() == count
    assert Chunk.objects.filter(document=doc, live=False).count() == count
    assert CorpusStat.objects.get(company=company).chunk_count == count
    document_delete(company=company, document_id=doc.id)
    # Out of the live version and the BM25 statistics at once; both revisions are kept for a rollback to
    # versions 1 or 2 until RAG_VERSIONS_KEPT later versions have gone live (rag/tests/test_version_actions.py).
    assert not Chunk.objects.filter(live=True).exists() and CorpusStat.objects.get(company=company).chunk_count == 0
    assert set(Chunk.objects.filter(document=doc).values_list("revision", flat=True)) == {1, 2}


def ingest_folder_one(company, name):
    path = DEMO_DIR / "kb" / name
    document, _ = document_add(company=company, file_name=name, data=path.read_bytes(), schedule=False)
    return documents_ingest(company=company, documents=[document])


def test_too_large_and_plan_limits_refuse_with_codes(make_company, settings):
    company = make_company("small", max_documents=1)
    settings.DOCUMENT_MAX_BYTES = 10
    with pytest.raises(ValidationFailed) as too_big:
        document_add(company=company, file_name="x.txt", data=b"0123456789A", schedule=False)
    assert too_big.value.code == "document_too_large"
    settings.DOCUMENT_MAX_BYTES = 1000
    document_add(company=company, file_name="x.txt", data=b"one", schedule=False)
    with pytest.raises(QuotaExceeded) as quota:
        document_add(company=company, file_name="y.txt", data=b"two", schedule=False)
    assert quota.value.code == "quota_documents"
    assert Document.objects.count() == 1


def test_ingest_command_reports_each_file(company, capsys, tmp_path):
    (tmp_path / "ok.md").write_text("# Title\n\nSome useful text about refunds.")
    (tmp_path / "bad.xyz").write_text("???")
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="1 file"):  # all files tried; the exit status says one failed
        call_command("ingest", str(tmp_path), company="acme", quiet=True)
    out = capsys.readouterr().out
    assert "ok.md" in out and "ready" in out
    assert "bad.xyz" in out and "failed" in out and "unsupported file type" in out
    assert "1 indexed, 1 failed" in out



def test_one_ingest_command_is_one_knowledge_base_version(company, capsys):
    """A folder ingested by one command is one change, as a multi-file upload is: one version (it had been one
    version, and one "version N live" log line, per file: 60 for the zulip help centre)."""
    from rag.models import KnowledgeBaseVersion

    call_command("ingest", str(DEMO_DIR / "kb"), company="acme", quiet=True)
    versions = list(KnowledgeBaseVersion.objects.filter(company=company))
    assert len(versions) == 1 and versions[0].status == "live"
    assert len(versions[0].changes) == Document.objects.filter(company=company).count() > 5

def test_ingest_command_unknown_company(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No company"):
        call_command("ingest", str(DEMO_DIR / "kb"), company="nope")


def test_indexing_records_embedding_tokens_in_the_ledger(company):
    from billing.models import UsageCounter, UsageEvent
    from saas_bot.testing.pytest_plugin import record_pending_usage

    (doc,) = ingest_folder_one(company, "sharing-links.md")
    record_pending_usage()
    event = UsageEvent.objects.get(kind="embedding_tokens")
    assert event.quantity == doc.token_count > 0 and event.channel == "ingest"
    assert UsageCounter.objects.get(company=company).embedding_tokens == doc.token_count
    assert UsageCounter.objects.get(company=company).messages == 0


def test_pasted_text_and_collections_scope_what_a_bot_answers_from(company, bot):
    from bots.answers import bot_document_ids
    from rag.answering import answer_question
    from rag.models import Collection
    from rag.services import document_add_text

    billing = Collection.objects.create(company=company, name="Billing")
    refunds, created = document_add_text(company=company, title="Refund policy", collection=billing,
                                         text="# Refunds\n\nRefunds are paid within 14 days to the original card.")
    other, _ = document_add_text(company=company, title="Office pets",
                                 text="# Pets\n\nDogs are welcome in the office on Fridays.")
    assert created and refunds.file_name == "refund-policy.md" and refunds.collection == billing
    documents_ingest(company=company, documents=[refunds, other])
    assert bot_document_ids(bot) is None  # no collection chosen: every document
    bot.collections.add(billing)
    scope = bot_document_ids(bot)
    assert scope == [refunds.id]
    assert not answer_question(company=company, question="are dogs welcome in the office?").refused
    assert answer_question(company=company, question="are dogs welcome in the office?", document_ids=scope).refused
    assert not answer_question(company=company, question="when are refunds paid?", document_ids=scope).refused
    with pytest.raises(ValidationFailed) as untitled:
        document_add_text(company=company, title=" ", text="x")
    assert untitled.value.code == "document_title_missing"


def test_document_from_url_is_fetched_over_http_and_bad_urls_are_refused(company, telegram, settings):
    from rag.services import document_add_url

    for private in ("http://127.0.0.1:9/x", "http://localhost/admin/", "http://169.254.169.254/latest/meta-data",
                    "http://10.0.0.5/", "http://[::1]/"):
        with pytest.raises(ValidationFailed) as refused:
            document_add_url(company=company, url=private)
        assert refused.value.code == "document_url_forbidden", private
    settings.DOCUMENT_URL_ALLOW_PRIVATE = True  # the local test servers below

    page = telegram.base_url  # any live local HTTP server: the emulator answers 404 on unknown paths
    for url, code in [("ftp://example.com/x", "document_url_invalid"), ("not a url", "document_url_invalid"),
                      (f"{page}/no-such-page", "document_url_unreachable"),
                      ("http://127.0.0.1:9/closed", "document_url_unreachable")]:
        with pytest.raises(ValidationFailed) as refused:
            document_add_url(company=company, url=url)
        assert refused.value.code == code
    assert Document.objects.count() == 0


def test_document_from_url_is_stored_with_its_source_and_ingested(company, tmp_path, settings):
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from rag.services import document_add_url

    (tmp_path / "returns.html").write_text("<html><head><title>Returns</title></head><body><h1>Returns</h1>"
                                           "<p>Items can be returned within 30 days of delivery.</p></body></html>")
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\r\n")
    settings.DOCUMENT_URL_ALLOW_PRIVATE = True  # a local server stands in for a public one
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        document, created = document_add_url(company=company, url=f"{base}/returns.html")
        with pytest.raises(ValidationFailed) as image:
            document_add_url(company=company, url=f"{base}/logo.png")
    finally:
        server.shutdown()
    assert image.value.code == "document_unsupported_type"
    assert created and document.source_url == f"{base}/returns.html" and document.file_name == "returns.html"
    (ready,) = documents_ingest(company=company, documents=[document])
    assert ready.status == "ready" and ready.chunk_count >= 1 and ready.title == "Returns"
    assert Document.objects.count() == 1


def test_a_binary_file_with_a_text_extension_fails_with_a_reason(company):
    document, _ = document_add(company=company, file_name="bin.txt", data=b"\x00\x01\x02\xff" * 50, schedule=False)
    (failed,) = documents_ingest(company=company, documents=[document])
    assert failed.status == "failed" and "binary file" in failed.error and failed.chunk_count == 0
    utf16, _ = document_add(company=company, file_name="notes.txt", schedule=False,
                            data="Refunds are paid within 14 days.".encode("utf-16"))
    (ready,) = documents_ingest(company=company, documents=[utf16])
    assert ready.status == "ready" and ready.chunk_count == 1
