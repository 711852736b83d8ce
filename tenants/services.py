"""Writes on companies."""
from __future__ import annotations

from django.db import transaction
from django.utils.text import slugify

from saas_bot.errors import ValidationFailed
from tenants.models import Company


@transaction.atomic
def company_create(*, name: str, slug: str | None = None) -> Company:
    """Create a company.

    Raises:
        ValidationFailed(code="company_slug_taken"): the slug is in use.
    """
    slug = slug or slugify(name)
    if not slug or slug != slugify(slug) or len(slug) > 60:
        raise ValidationFailed(code="company_slug_invalid",
                               message=f"'{slug}' is not a valid slug: use lowercase letters, digits and hyphens.")
    if Company.objects.filter(slug=slug).exists():
        raise ValidationFailed(code="company_slug_taken", message=f"A company with slug '{slug}' exists.")
    return Company.objects.create(name=name, slug=slug)
