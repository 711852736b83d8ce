"""Every change of a company's documents, published to listeners as one batch per use case.

Every write on documents (rag/services.py, rag/ingestion.py) reports its change (added, content changed,
removed) to the ``document_changes_subscribe`` listeners as a ``DocumentChangeBatch``: one batch per call,
or one for everything done inside ``document_change_batch(...)`` (a source's sync run). Knowledge-base
versions are built from these batches (rag/versions.py; docs/knowledge-base.md).
"""
from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator

from django.db import transaction

from tenants.models import Company

logger = logging.getLogger("saas_bot.rag")


@dataclass(frozen=True)
class DocumentChange:
    """One change: ``action`` is "added", "changed" (new content) or "removed"; ``checksum`` is the
    content's SHA-256 after the change (before it, for "removed")."""

    action: str
    document_id: int
    checksum: str


@dataclass
class DocumentChangeBatch:
    """Changes of one company's documents that belong together: one upload, one delete, or one sync run.

    ``origin`` is "upload", "delete", "replace" or "sync_run"; ``origin_id`` the SyncRun's id for a run
    (None otherwise). Listeners get the batch once, after the changes are committed; documents added or
    changed in it may still be pending ingestion (their ``status``), except in a sync run, which indexes
    them before its batch ends.
    """

    company_id: int
    origin: str
    origin_id: int | None = None
    changes: list[DocumentChange] = field(default_factory=list)


DocumentChangeListener = Callable[[DocumentChangeBatch], None]
_change_listeners: list[DocumentChangeListener] = []


def document_changes_subscribe(listener: DocumentChangeListener) -> None:
    """Call ``listener(batch)`` after every committed batch of document changes (idempotent per listener).

    A listener's exception is logged and does not undo the changes or stop other listeners.
    """
    if listener not in _change_listeners:
        _change_listeners.append(listener)


def document_changes_unsubscribe(listener: DocumentChangeListener) -> None:
    """Stop calling ``listener`` (tests)."""
    if listener in _change_listeners:
        _change_listeners.remove(listener)


def _batch_publish(batch: DocumentChangeBatch) -> None:
    def publish() -> None:
        for listener in list(_change_listeners):
            try:
                listener(batch)
            except Exception:  # one listener must not stop the others or undo the change
                logger.exception("document change listener %r failed on %s %s", listener, batch.origin,
                                 batch.origin_id)

    if batch.changes:
        from rag.versions import version_record_batch

        version_record_batch(batch)  # the batch's knowledge-base version, in the batch's transaction
        transaction.on_commit(publish)


@contextlib.contextmanager
def document_change_batch(*, company: Company, origin: str,
                          origin_id: int | None = None) -> Iterator[DocumentChangeBatch]:
    """Collect the changes of every document service called with ``batch=`` the yielded batch, and publish
    them as one batch when the block ends (after commit; nothing when nothing changed). On an exception
    the changes made so far are still published (they are stored)."""
    batch = DocumentChangeBatch(company_id=company.id, origin=origin, origin_id=origin_id)
    _open_batches.append(batch)
    try:
        yield batch
    finally:
        _open_batches.remove(batch)
        _batch_publish(batch)


class _OpenBatches(threading.local):
    def __init__(self) -> None:
        self.batches: list[DocumentChangeBatch] = []

    def append(self, batch: DocumentChangeBatch) -> None:
        self.batches.append(batch)

    def remove(self, batch: DocumentChangeBatch) -> None:
        self.batches.remove(batch)

    def document_ids(self) -> set[int]:
        return {c.document_id for b in self.batches for c in b.changes}


_open_batches = _OpenBatches()  # this thread's open document_change_batch blocks


def _record_change(batch: DocumentChangeBatch | None, *, company: Company, origin: str, change: DocumentChange
                   ) -> None:
    """Add ``change`` to ``batch``, or publish it alone (a batch of one) when there is no batch."""
    if batch is not None:
        if batch.company_id != company.id:
            raise ValueError("a change batch holds one company's changes")
        batch.changes.append(change)
        return
    _batch_publish(DocumentChangeBatch(company_id=company.id, origin=origin, changes=[change]))
