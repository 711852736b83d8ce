"""Reads on companies."""
from __future__ import annotations

from saas_bot.errors import NotFound
from tenants.models import Company


def company_get_by_slug(*, slug: str) -> Company:
    """The company with this slug.

    Raises:
        NotFound(code="company_not_found").
    """
    try:
        return Company.objects.get(slug=slug)
    except Company.DoesNotExist:
        raise NotFound(code="company_not_found", message=f"No company with slug '{slug}'.") from None
