"""``Authorization: Api-Key <key>`` authentication, the company a request acts for, and per-key throttling."""
from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions, throttling
from rest_framework_api_key.permissions import KeyParser

from saas_bot.api.models import ApiKey
from tenants import access
from tenants.models import Company

# last_used_at is written at most this often per key (a write per request would serialise hot keys).
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


class ApiKeyUser:
    """``request.user`` for key-authenticated requests: authenticated, no Django user behind it."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = id = None

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key

    def __str__(self) -> str:
        return f"API key {self.api_key.prefix}"


def _bearer_key(request) -> str | None:
    """The key of ``Authorization: Bearer <key>`` (RFC 6750's scheme, which most HTTP clients and SDKs
    send for a token); the scheme name is case-insensitive (RFC 9110 11.1)."""
    scheme, _, rest = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return rest.strip() or None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Reads ``Authorization: Api-Key <prefix>.<secret>`` (djangorestframework-api-key's KeyParser) or
    ``Authorization: Bearer <prefix>.<secret>``.

    ``request.auth`` becomes the ApiKey (its ``company`` scopes everything). A missing header leaves
    the request to the next authenticator (session); an unknown, revoked or expired key is a 401.
    """

    keyword = "Api-Key"

    def authenticate(self, request):
        key = KeyParser().get(request._request) or _bearer_key(request._request)
        if not key:
            return None
        if len(key) > 200 or not all(" " < ch <= "~" for ch in key):  # issued keys are short, printable ASCII
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.")
        try:
            api_key = ApiKey.objects.get_from_key(key)
        except ApiKey.DoesNotExist:
            raise exceptions.AuthenticationFailed("Unknown or revoked API key.") from None
        if api_key.revoked:
            raise exceptions.AuthenticationFailed("This API key was revoked.")
        if api_key.has_expired:
            raise exceptions.AuthenticationFailed("This API key has expired.")
        if not api_key.company.is_active:
            raise exceptions.AuthenticationFailed("This company is suspended.")
        now = timezone.now()
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
            api_key.last_used_at = now
        return ApiKeyUser(api_key), api_key

    def authenticate_header(self, request) -> str:
        return self.keyword


def request_company(request) -> Company | None:
    """The company a request acts for: the API key's, else the session user's current company
    (``tenants.access.current_company``); None for platform staff without a membership."""
    if isinstance(request.auth, ApiKey):
        return request.auth.company
    return access.current_company(request)


class CompanyMember(permissions.BasePermission):
    """Key holders, or company members with a session; viewers may only read (``tenants.access.can_edit``).

    Platform staff without a membership have no company here: 403 ``permission_denied`` (they use the
    admin for cross-company work).
    """

    message = "No company: use an API key, or log in as a member of a company."

    def has_permission(self, request, view) -> bool:
        company = request_company(request)
        if company is None:
            return False
        if isinstance(request.auth, ApiKey) or request.method in permissions.SAFE_METHODS:
            return True
        self.message = "Viewers may only read."
        return access.role_in(request.user, company) in access.EDITOR_ROLES


class ApiKeyRateThrottle(throttling.SimpleRateThrottle):
    """Requests per API key (session users: per user), rate ``API_THROTTLE_RATE`` ("120/min" by default),
    counted in Django's default cache. Over it: 429 ``throttled`` with ``Retry-After``."""

    scope = "api_key"

    def get_rate(self) -> str | None:
        # Read at request time (not at import, as DRF's default does) so settings overrides apply.
        return settings.API_THROTTLE_RATE or None

    def get_cache_key(self, request, view) -> str | None:
        if isinstance(request.auth, ApiKey):
            ident = f"key:{request.auth.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user:{request.user.pk}"
        else:
            ident = f"ip:{self.get_ident(request)}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
