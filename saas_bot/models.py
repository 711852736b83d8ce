"""Shared model helpers: the tenant-scoped queryset every company-owned model uses."""
from __future__ import annotations

from django.db import models


class CompanyQuerySet(models.QuerySet):
    """Querysets of company-owned rows. Callers start from ``for_company``."""

    def for_company(self, company) -> "CompanyQuerySet":
        """Rows of this company only (``company`` is a Company or its id)."""
        company_id = getattr(company, "pk", company)
        return self.filter(company_id=company_id)
