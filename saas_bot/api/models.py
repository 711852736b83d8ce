"""API keys (hashed, with a visible prefix, expiry and revocation) and stored idempotent responses."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager

from saas_bot.models import CompanyQuerySet


class ApiKeyQuerySet(CompanyQuerySet):
    """Keys of one company (``for_company``) and usable keys."""


class ApiKeyManager(BaseAPIKeyManager.from_queryset(ApiKeyQuerySet)):
    """``create_key(name=, company=, ...) -> (ApiKey, "<prefix>.<secret>")``; the secret is not stored."""


class ApiKey(AbstractAPIKey):
    """A company's API key (djangorestframework-api-key: SHA-512 hash of the secret, visible ``prefix``).

    Sent as ``Authorization: Api-Key <prefix>.<secret>``. ``revoked`` and ``expiry_date`` make it
    unusable (401). ``last_used_at`` is refreshed at most once a minute per key.
    """

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="api_keys")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyManager()

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"


class IdempotencyRecord(models.Model):
    """The first response to a POST with an ``Idempotency-Key`` header, kept ``API_IDEMPOTENCY_HOURS``.

    The row is inserted (unique company + key) before the work runs, so a concurrent duplicate finds
    it and is refused with 409 instead of running twice; the response is stored when the work ends.
    """

    company = models.ForeignKey("tenants.Company", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and request data.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Empty while in progress.")
    response_body = models.TextField(blank=True, help_text="The JSON body as sent.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CompanyQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["company", "key"], name="idempotencyrecord_unique_company_key")]
        indexes = [models.Index(fields=["created_at"], name="idempotencyrecord_created")]
