"""Reads on documents that other apps need (billing counts them against the plan's limits)."""
from __future__ import annotations

from django.db.models import Sum

from rag.models import Document
from tenants.models import Company


def document_count(company: Company) -> int:
    """How many documents ``company`` holds (the plan's ``max_documents``)."""
    return Document.objects.for_company(company).count()


def document_bytes(company: Company) -> int:
    """The size of ``company``'s documents in bytes (the plan's ``max_storage_bytes``)."""
    return Document.objects.for_company(company).aggregate(total=Sum("size_bytes"))["total"] or 0
