"""Reads on documents that other apps need (billing counts them against the plan's limits)."""
from __future__ import annotations

from django.db.models import Exists, OuterRef, QuerySet, Sum

from rag.models import Chunk, Document
from tenants.models import Company


def document_count(company: Company) -> int:
    """How many documents ``company`` holds (the plan's ``max_documents``)."""
    return Document.objects.for_company(company).count()


def document_bytes(company: Company) -> int:
    """The size of ``company``'s documents in bytes (the plan's ``max_storage_bytes``)."""
    return Document.objects.for_company(company).aggregate(total=Sum("size_bytes"))["total"] or 0


def documents_with_answering(queryset: QuerySet) -> QuerySet:
    """``queryset`` of documents with ``answering`` (bool): whether any of the document's chunks is in the live
    knowledge-base version, i.e. the bots answer from it. False while it is indexed for the first time, while
    the version adding it is building or held, and after a rollback to a version without it
    (docs/knowledge-base.md "Versions")."""
    return queryset.annotate(answering=Exists(Chunk.objects.filter(document_id=OuterRef("pk"), live=True)))


def document_answering(document_id: int) -> bool:
    """``answering`` of one document (see ``documents_with_answering``)."""
    return Chunk.objects.filter(document_id=document_id, live=True).exists()
