"""rag.document_ingest retries transient errors, a bounded number of times, and nothing else (issue 12)."""
import pytest
from django.db import OperationalError

import rag.tasks
from rag.models import Document
from saas_bot.celery import app
from saas_bot.tasking import TASK_MAX_RETRIES

pytestmark = pytest.mark.django_db


@pytest.fixture
def pending_document(company):
    return Document.objects.create(company=company, title="Prices", file_name="prices.md", checksum="e" * 64)


def _failing_ingest(monkeypatch, error: Exception) -> list[int]:
    calls = []

    def document_ingest(*, company, document):
        calls.append(document.id)
        raise error

    monkeypatch.setattr(rag.tasks, "document_ingest", document_ingest)
    return calls


def test_a_bug_is_not_retried(pending_document, monkeypatch):
    calls = _failing_ingest(monkeypatch, KeyError("chunk"))
    with pytest.raises(KeyError):  # eager tasks propagate (CELERY_TASK_EAGER_PROPAGATES): the failure surfaces
        rag.tasks.document_ingest_task.apply(args=[pending_document.id])
    assert calls == [pending_document.id]  # once: a retry cannot fix a bug


def test_a_transient_error_is_retried_then_given_up(pending_document, monkeypatch):
    calls = _failing_ingest(monkeypatch, OperationalError("server closed the connection unexpectedly"))
    # Eager retries run at once, one after another, when the failure is not propagated at the first one.
    propagates, app.conf.task_eager_propagates = app.conf.task_eager_propagates, False
    try:
        result = rag.tasks.document_ingest_task.apply(args=[pending_document.id])
    finally:
        app.conf.task_eager_propagates = propagates
    assert result.failed() and isinstance(result.result, OperationalError)
    assert len(calls) == 1 + TASK_MAX_RETRIES  # the first run and the bounded retries, then the sweep's turn


def test_a_document_done_already_is_left_alone(pending_document, monkeypatch):
    calls = _failing_ingest(monkeypatch, KeyError("chunk"))
    Document.objects.filter(id=pending_document.id).update(status=Document.Status.READY)
    assert rag.tasks.document_ingest_task.apply(args=[pending_document.id]).successful()
    assert rag.tasks.document_ingest_task.apply(args=[pending_document.id + 10_000]).successful()  # deleted
    assert calls == []
