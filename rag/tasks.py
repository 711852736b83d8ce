"""Thin Celery tasks of the rag app."""
from celery import shared_task

from rag.models import Document
from rag.services import document_ingest
from saas_bot.errors import ProviderUnavailable


@shared_task(name="rag.document_ingest", acks_late=True, autoretry_for=(ProviderUnavailable,),
             retry_backoff=True, max_retries=5, soft_time_limit=1800)
def document_ingest_task(document_id: int) -> None:
    """Extract, split, embed and index one document; running it twice is harmless."""
    document = Document.objects.select_related("company").filter(id=document_id).first()
    if document is None:  # deleted before the worker got to it
        return
    document_ingest(company=document.company, document=document)
