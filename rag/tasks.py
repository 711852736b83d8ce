"""Thin Celery tasks of the rag app."""
from celery import shared_task

from rag.models import Document
from rag.services import document_ingest, documents_sweep
from saas_bot.tasking import TASK_MAX_RETRIES, TRANSIENT_ERRORS


@shared_task(name="rag.document_ingest", acks_late=True, autoretry_for=TRANSIENT_ERRORS,
             retry_backoff=True, max_retries=TASK_MAX_RETRIES, soft_time_limit=1800, time_limit=1900)
def document_ingest_task(document_id: int) -> None:
    """Extract, split, embed and index one pending (or abandoned "processing") document.

    A redelivered message for a document already ready or failed does nothing. A run killed with its
    worker counts on the row (``Document.ingest_attempts``); the sweep queues it again or fails it.
    """
    document = Document.objects.select_related("company").filter(id=document_id).first()
    if document is None or document.status in (Document.Status.READY, Document.Status.FAILED):
        return  # deleted before the worker got to it, or done already (a redelivery)
    document_ingest(company=document.company, document=document)


@shared_task(name="rag.documents_sweep", soft_time_limit=120)
def documents_sweep_task() -> None:
    """Queue again, or fail, documents left "processing" by a dead process, and embedding-model switches
    whose task was lost (beat, every 5 minutes)."""
    from rag.knowledge_base import knowledge_base_switches_sweep

    from rag.versions import versions_sweep

    documents_sweep()
    knowledge_base_switches_sweep()
    versions_sweep()


@shared_task(name="rag.knowledge_base_reembed", acks_late=True, soft_time_limit=6 * 3600, time_limit=6 * 3600 + 60)
def knowledge_base_reembed_task(company_id: int) -> None:
    """Re-embed a company's chunks with the model it switched to, then change over (idempotent, resumable)."""
    from rag.knowledge_base import knowledge_base_reembed

    knowledge_base_reembed(company_id=company_id)


@shared_task(name="rag.source_sync", acks_late=True, soft_time_limit=3 * 3600, time_limit=3 * 3600 + 60)
def source_sync_task(run_id: int) -> None:
    """Carry out a queued sync run of a source; a redelivered message for a finished run does nothing."""
    from rag.sources import sync_run_execute

    sync_run_execute(run_id=run_id)


@shared_task(name="rag.sources_sync_due", soft_time_limit=120)
def sources_sync_due_task() -> None:
    """Queue the runs of daily and weekly sources that are due (beat, every 15 minutes)."""
    from rag.sources import sources_sync_due

    sources_sync_due()


@shared_task(name="rag.versions_advance", acks_late=True, soft_time_limit=1800, time_limit=1900)
def versions_advance_task(company_id: int) -> None:
    """Build the company's knowledge-base versions whose documents are indexed: golden check, then live or
    held (rag/versions.py; queued when a change could not take the version lock at once)."""
    from rag.versions import versions_advance

    versions_advance(company_id)


@shared_task(name="rag.company_hnsw_indexes_reconcile", soft_time_limit=3 * 3600, time_limit=3 * 3600 + 60)
def company_hnsw_indexes_reconcile_task() -> None:
    """Build the per-company HNSW indexes of companies past RAG_COMPANY_HNSW_MIN_CHUNKS and drop those no longer
    needed (beat, every RAG_COMPANY_HNSW_RECONCILE_SECONDS; rag/company_hnsw.py). A run cut short leaves an
    invalid index that the next run replaces; a run while another holds the lock does nothing."""
    from rag.company_hnsw import company_hnsw_indexes_reconcile

    company_hnsw_indexes_reconcile()


@shared_task(name="rag.company_hnsw_index_drop", acks_late=True, soft_time_limit=600, time_limit=660)
def company_hnsw_index_drop_task(company_id: int) -> None:
    """Drop a deleted company's partial HNSW index (queued after the delete commits); nothing if it is gone."""
    from rag.company_hnsw import company_hnsw_index_drop

    company_hnsw_index_drop(company_id=company_id)
