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


def company_for_command(slug: str | None) -> Company | None:
    """The company a management command's ``--company SLUG`` names (None when not given).

    Raises:
        django.core.management.base.CommandError: no such company (a clear message, exit status 1).
    """
    from django.core.management.base import CommandError

    if not slug:
        return None
    try:
        return company_get_by_slug(slug=slug)
    except NotFound as exc:
        raise CommandError(exc.message) from exc
